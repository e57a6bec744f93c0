"""The hand-written backward pass: the same outputs and gradients as differentiating the cells' scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import assert_same_function
from nn_jax.models import recurrence, rnn
from nn_jax.models.activations import ACTIVATIONS


def _case(cell, activation, dtype, batch, steps, features=2, units=5):
  """A cell's random parameters (biases too), a non-zero initial state, a window and output weights."""
  flax_cell = rnn.CELLS[cell](features=units, activation_fn=ACTIVATIONS[activation], dtype=dtype)
  window = jax.random.normal(jax.random.key(0), (batch, steps, features))
  state = 0.5 * jax.random.normal(jax.random.key(1), (batch, units))
  state = state.astype(dtype) if cell == "simple" else state  # as the model's initial carry
  carry = (state, 0.3 * state) if cell == "lstm" else state
  params = flax_cell.init(jax.random.key(2), carry, window[:, 0])["params"]
  params = jax.tree_util.tree_map_with_path(  # every bias non-zero, so every bias term is checked
      lambda path, a: 0.5 * jax.random.normal(jax.random.key(len(str(path))), a.shape) if path[-1].key == "bias" else a,
      params)
  weights = jax.random.normal(jax.random.key(3), (batch, units))

  def scanned(params, carry, window):  # what nn.RNN computes: the cell, scanned, differentiated by JAX
    _, outputs = jax.lax.scan(lambda c, x: flax_cell.apply({"params": params}, c, x), carry, window.swapaxes(0, 1))
    return jnp.sum(outputs[-1].astype(jnp.float32) * weights)

  def hand_written(params, carry, window, unroll_max_steps=recurrence.UNROLL_MAX_STEPS):
    last = recurrence.last_hidden(cell, params, carry, window, ACTIVATIONS[activation], dtype, unroll_max_steps)
    return jnp.sum(last.astype(jnp.float32) * weights)

  return scanned, hand_written, (params, carry, window)


def _compare(reference, other, args, atol, rtol):
  value, grads = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))(*args)
  other_value, other_grads = jax.jit(jax.value_and_grad(other, argnums=(0, 1, 2)))(*args)
  np.testing.assert_allclose(other_value, value, atol=atol, rtol=rtol)
  for a, b in zip(jax.tree_util.tree_leaves(other_grads), jax.tree_util.tree_leaves(grads)):
    scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))  # bf16: relative to the gradient's size
    np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), atol=atol * max(scale, 1.0), rtol=rtol)


FAST = {("lstm", "relu", 3, 7), ("gru", "tanh", 5, 10), ("simple", "sigmoid", 1, 1)}  # the rest: make test


@pytest.mark.parametrize("cell,activation,batch,steps", [
    case if case in FAST else pytest.param(*case, marks=pytest.mark.slow)
    for case in ((cell, activation, batch, steps) for cell in ("lstm", "gru", "simple")
                 for activation in ("tanh", "relu", "sigmoid") for batch, steps in ((3, 7), (1, 1), (5, 10)))])
def test_outputs_and_gradients_equal_the_scanned_cell(cell, activation, batch, steps):
  scanned, hand_written, args = _case(cell, activation, jnp.float32, batch, steps)
  _compare(scanned, hand_written, args, atol=1e-5, rtol=1e-4)  # inputs, parameters and initial state


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_loops_in_a_scan_give_the_same_numbers(cell):  # the other tests' sequences are unrolled
  scanned, hand_written, args = _case(cell, "tanh", jnp.float32, 4, 9)
  _compare(scanned, lambda *a: hand_written(*a, unroll_max_steps=8), args, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", [pytest.param("lstm", marks=pytest.mark.slow), "gru",
                                  pytest.param("simple", marks=pytest.mark.slow)])
def test_bfloat16_within_its_precision(cell):
  # bfloat16 keeps 8 bits of mantissa (relative steps of 0.4%). Over 10 steps the two ways round
  # differently (the hand-written pass keeps its gradient coefficients in float32): up to 1.5% of a
  # gradient's largest entry in these cases, so 5% is asked.
  scanned, hand_written, args = _case(cell, "tanh", jnp.bfloat16, 6, 10)
  _compare(scanned, hand_written, args, atol=5e-2, rtol=5e-2)


def test_finite_differences_agree_with_the_hand_written_gradient():
  _, hand_written, (params, carry, window) = _case("gru", "tanh", jnp.float32, 2, 4)
  check_grads(jax.jit(lambda w, c, p: hand_written(p, c, w)), (window, carry, params), order=1, modes=["rev"],
              atol=2e-2, rtol=2e-2, eps=1e-3)


def test_a_slightly_wrong_backward_pass_is_caught(monkeypatch):
  # The comparison must notice a wrong gradient: the gates' slopes off by 1%.
  scanned, hand_written, args = _case("lstm", "tanh", jnp.float32, 3, 7)
  monkeypatch.setattr(recurrence, "_sigmoid_slope", lambda s: 1.01 * s * (1 - s))
  with pytest.raises(AssertionError):
    _compare(scanned, hand_written, args, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_the_model_with_custom_vjp_is_the_model_with_scan(cell):
  window = jax.random.normal(jax.random.key(3), (8, 10, 1))
  targets = jax.random.normal(jax.random.key(4), (8, 1))
  assert_same_function(rnn.SequenceRegressor(cell=cell, units=12, activation="relu", recurrence="scan"),
                       rnn.SequenceRegressor(cell=cell, units=12, activation="relu", recurrence="custom_vjp"),
                       window, targets)
