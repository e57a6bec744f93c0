"""The LSTM cell's parameters in cuDNN's layout: packed and unpacked, checked on CPU against
jax.experimental.rnn's reference LSTM (the cuDNN kernel itself needs an NVIDIA GPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, run_cli
from jax.experimental import rnn as jax_rnn

from nn_jax.models import cudnn_lstm, rnn

BATCH, STEPS, FEATURES, UNITS = 3, 7, 2, 5


def _cell_and_inputs():
  cell = rnn.make_cell("lstm", UNITS, "tanh", jnp.float32)
  window = jax.random.normal(jax.random.key(1), (BATCH, STEPS, FEATURES))
  carry = rnn.initial_carry("lstm", UNITS, BATCH, jnp.float32)
  params = cell.init(jax.random.key(0), carry, window[:, 0])["params"]
  # non-zero biases and carry, so that a misplaced gate or bias shows
  params = jax.tree_util.tree_map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(a.size), a.shape), params)
  carry = tuple(0.5 * jax.random.normal(jax.random.key(i), (BATCH, UNITS)) for i in (2, 3))
  return cell, params, carry, window


def _reference_last_hidden(weights, carry, window):
  c, h = carry
  w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(weights, FEATURES, UNITS, 1, False)
  _, h_n, _ = jax_rnn.lstm_ref(window, h[None], c[None], w_ih, w_hh, b_ih, b_hh,
                               jnp.full((BATCH,), STEPS, jnp.int32), FEATURES, UNITS, 1, 0.0, False)
  return h_n[0]


def _scanned_last_hidden(cell, params, carry, window):
  return jax.lax.scan(lambda carry, x: cell.apply({"params": params}, carry, x), carry,
                      window.swapaxes(0, 1))[0][1]


@pytest.mark.slow
def test_packed_weights_make_the_reference_lstm_compute_the_cell():
  cell, params, carry, window = _cell_and_inputs()
  weights = cudnn_lstm.pack(params)
  assert weights.shape == (jax_rnn.get_num_params_in_lstm(FEATURES, UNITS, 1, False),)
  np.testing.assert_allclose(_reference_last_hidden(weights, carry, window),
                             _scanned_last_hidden(cell, params, carry, window), rtol=1e-5, atol=1e-6)


def test_unpack_inverts_pack():
  _, params, _, _ = _cell_and_inputs()
  unpacked = cudnn_lstm.unpack(cudnn_lstm.pack(params), FEATURES, UNITS)
  assert jax.tree_util.tree_structure(unpacked) == jax.tree_util.tree_structure(params)
  for a, b in zip(jax.tree_util.tree_leaves(unpacked), jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_gradients_reach_the_cell_s_own_parameters_through_the_packing():
  cell, params, carry, window = _cell_and_inputs()
  through_packing = jax.grad(lambda p: _reference_last_hidden(cudnn_lstm.pack(p), carry, window).sum())(params)
  scanned = jax.grad(lambda p: _scanned_last_hidden(cell, p, carry, window).sum())(params)
  for a, b in zip(jax.tree_util.tree_leaves(through_packing), jax.tree_util.tree_leaves(scanned)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    (["--config.model.recurrence=cudnn"], "computes tanh only"),  # the article's relu LSTM
    (["--config.model.recurrence=cudnn", "--config.model.activation=tanh"], "runs on an NVIDIA GPU"),  # here: CPU
    (["--config.model.recurrence=cudnn", "--config.model.activation=tanh", "--config.model.cell=gru"],
     "for the LSTM only"),
])
def test_cudnn_where_it_cannot_run_is_one_line_before_training(tmp_path, overrides, message):
  result = run_cli(["train", "--config", ROOT / "experiments" / "recurrent_series.py:lstm", "--workdir",
                    tmp_path / "run", *overrides])
  assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "run" / "checkpoints").exists()
