"""The recurrent cells are the textbook equations, and the LSTM fixes the plain RNN's vanishing gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same_function

from nn_jax.models import rnn


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_forward(cell: str, params: dict, window: np.ndarray, act) -> np.ndarray:
  """The textbook equations, step by step, then the linear head on the last hidden state."""
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  c = p["cell"]
  batch, steps, _ = window.shape
  units = c["h"]["kernel"].shape[0] if cell == "simple" else c["hn" if cell == "gru" else "hi"]["kernel"].shape[0]
  h, cell_state = np.zeros((batch, units)), np.zeros((batch, units))
  for t in range(steps):
    x = window[:, t, :]
    if cell == "simple":  # h' = act(W x + b + U h)
      h = act(x @ c["i"]["kernel"] + c["i"]["bias"] + h @ c["h"]["kernel"])
    elif cell == "lstm":  # gates i, f, o; candidate g; c' = f c + i g; h' = o act(c')
      gate = lambda k: x @ c["i" + k]["kernel"] + h @ c["h" + k]["kernel"] + c["h" + k]["bias"]
      i, f, o, g = sigmoid(gate("i")), sigmoid(gate("f")), sigmoid(gate("o")), act(gate("g"))
      cell_state = f * cell_state + i * g
      h = o * act(cell_state)
    else:  # GRU: r, z gates; n = act(W x + b + r (U h + b_h)); h' = (1 - z) n + z h
      r = sigmoid(x @ c["ir"]["kernel"] + c["ir"]["bias"] + h @ c["hr"]["kernel"])
      z = sigmoid(x @ c["iz"]["kernel"] + c["iz"]["bias"] + h @ c["hz"]["kernel"])
      n = act(x @ c["in"]["kernel"] + c["in"]["bias"] + r * (h @ c["hn"]["kernel"] + c["hn"]["bias"]))
      h = (1 - z) * n + z * h
  return h @ p["head"]["kernel"] + p["head"]["bias"]


NUMPY_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}


@pytest.mark.parametrize("cell,activation", [
    (cell, activation) if (cell, activation) in {("lstm", "relu"), ("gru", "tanh")}
    else pytest.param(cell, activation, marks=pytest.mark.slow)
    for cell in ("simple", "lstm", "gru") for activation in ("tanh", "relu")])
def test_forward_pass_is_the_textbook_equations(cell, activation):
  model = rnn.SequenceRegressor(cell=cell, units=6, activation=activation)
  window = np.random.default_rng(0).normal(size=(4, 10, 1)).astype(np.float32)
  params = model.init(jax.random.key(1), window)["params"]
  # Random biases too, so that every bias term is checked, not just zeros and ones.
  params = jax.tree_util.tree_map_with_path(
      lambda path, a: jax.random.normal(jax.random.key(len(str(path))), a.shape) * 0.5
      if path[-1].key == "bias" else a, params)
  expected = numpy_forward(cell, params, window.astype(np.float64), NUMPY_ACTIVATIONS[activation])
  np.testing.assert_allclose(model.apply({"params": params}, window), expected, atol=1e-5)


def test_our_lstm_cell_is_flax_lstm_cell_but_for_the_forget_bias_init():
  window = jnp.ones((2, 5, 3))
  ours = nn.RNN(rnn.LSTMCell(features=4))
  params = ours.init(jax.random.key(0), window)
  np.testing.assert_array_equal(params["params"]["cell"]["hf"]["bias"], 1.0)
  flax_cell = nn.RNN(nn.LSTMCell(features=4))
  assert jax.tree_util.tree_structure(flax_cell.init(jax.random.key(0), window)) == jax.tree_util.tree_structure(params)
  np.testing.assert_allclose(ours.apply(params, window), flax_cell.apply(params, window), rtol=1e-6)
  zero_bias = nn.RNN(rnn.LSTMCell(features=4, forget_bias=0.0)).init(jax.random.key(0), window)
  np.testing.assert_array_equal(zero_bias["params"]["cell"]["hf"]["bias"], 0.0)


def first_to_last_step_gradient_ratio(cell: str, seed: int) -> float:
  """|d output / d input at step 1| over |d output / d input at step 10|, averaged over a batch."""
  model = rnn.SequenceRegressor(cell=cell, units=50, activation="tanh")
  window = jax.random.normal(jax.random.key(100 + seed), (64, 10, 1))
  params = model.init(jax.random.key(seed), window)["params"]
  grads = jax.grad(lambda x: model.apply({"params": params}, x).sum())(window)
  per_step = jnp.abs(grads[..., 0]).mean(axis=0)
  return float(per_step[0] / per_step[-1])


@pytest.mark.slow
def test_plain_rnn_gradient_vanishes_and_the_lstm_keeps_more_of_it():
  seeds = range(5)
  simple = np.array([first_to_last_step_gradient_ratio("simple", s) for s in seeds])
  lstm = np.array([first_to_last_step_gradient_ratio("lstm", s) for s in seeds])
  geometric_mean = lambda r: float(np.exp(np.log(r).mean()))
  # Across 10 steps the plain RNN passes less than a tenth of the gradient back to step 1 ...
  assert np.all(simple < 0.1), simple
  # ... and the LSTM, remembering through its cell state, passes back over twice as much.
  assert geometric_mean(lstm) > 2 * geometric_mean(simple), (lstm, simple)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_every_cell_beats_the_naive_baseline_on_a_noisy_sine(tmp_path, cell, quiet_progress):
  from conftest import experiment
  from nn_jax.training import trainer
  config = experiment("recurrent_series", "dataset.name=noisy_sine", "num_epochs=30",
                      "log_every_epochs=30", "checkpoint_every_epochs=0", f"model.cell={cell}")
  summary = trainer.train_and_evaluate(config, tmp_path)
  assert summary["final"]["test"]["rmse"] < 0.8 * summary["reference"]["test"]["naive_rmse"]


@pytest.mark.slow
def test_the_optimized_lstm_gives_scan_s_numbers():
  window = jax.random.normal(jax.random.key(3), (8, 10, 1))
  targets = jax.random.normal(jax.random.key(4), (8, 1))
  assert_same_function(rnn.SequenceRegressor(cell="lstm", units=12, activation="relu", recurrence="scan"),
                       rnn.SequenceRegressor(cell="lstm", units=12, activation="relu", recurrence="optimized"),
                       window, targets)


@pytest.mark.slow
def test_optimized_recurrence_computes_what_flax_optimized_lstm_cell_does():
  import flax.linen as nn
  from nn_jax.models.activations import ACTIVATIONS
  window = jax.random.normal(jax.random.key(5), (8, 10, 1))
  model = rnn.SequenceRegressor(cell="lstm", units=12, activation="relu", recurrence="optimized")
  params = model.init(jax.random.key(0), window)["params"]
  np.testing.assert_array_equal(params["cell"]["hf"]["bias"], 1.0)  # Keras' forget-gate bias, kept
  flax_rnn = nn.RNN(nn.OptimizedLSTMCell(12, activation_fn=ACTIVATIONS["relu"]))
  last_hidden = flax_rnn.apply({"params": {"cell": params["cell"]}}, window)[:, -1]
  expected = last_hidden @ params["head"]["kernel"] + params["head"]["bias"]
  np.testing.assert_allclose(model.apply({"params": params}, window), expected, atol=1e-5)
