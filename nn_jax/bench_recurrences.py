"""The recurrences that lost the speed measurements, kept for the benchmark (`make bench`) only.

The model (nn_jax/models/rnn.py) offers `scan`, `optimized` and `custom_vjp`; this subclass
loops the same cells, on the same parameters and with the same numbers
(tests/bench_recurrences_test.py), three more ways, so that `make bench` can
show what `recurrence=auto` was chosen over:

  nn_scan    nn.scan lifting the cell class directly (what nn.RNN builds on)
  unrolled   nn.RNN with the loop fully unrolled
  fused      LSTM only: four gates in one matmul, the input projection hoisted out of the loop
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.models import recurrence as recurrence_lib
from nn_jax.models import rnn

RECURRENCES = ("nn_scan", "unrolled", "fused")


class BenchSequenceRegressor(rnn.SequenceRegressor):
  """SequenceRegressor with `recurrence` also one of RECURRENCES."""

  def _recur(self, recurrence: str, window):
    carry = self._initial_carry(window)
    if recurrence == "nn_scan":
      scanned = nn.scan(rnn.CELLS[self.cell], variable_broadcast="params", split_rngs={"params": False},
                        in_axes=1, out_axes=1)
      _, hidden_per_step = scanned(**self._cell_kwargs(), name="cell")(carry, window)
      return hidden_per_step[:, -1]
    if recurrence == "unrolled":
      cell = rnn.CELLS[self.cell](**self._cell_kwargs(), name="cell")
      return nn.RNN(cell, unroll=window.shape[1], name="rnn")(window, initial_carry=carry)[:, -1]
    if recurrence == "fused":
      cell = rnn.CELLS[self.cell](**self._cell_kwargs(), name="cell")
      if self.is_initializing():
        cell(carry, window[:, 0])
      return self._fused_lstm(cell.variables["params"], carry, window)
    return super()._recur(recurrence, window)

  def _fused_lstm(self, params, carry, window):
    """The LSTM with its cell's own parameters, its four gates as one matmul per step and the
    input projection of every step hoisted out of the loop into one matmul."""
    input_kernel, hidden_kernel, bias = recurrence_lib.lstm_matrices(params, self.dtype)
    projected = jnp.einsum("btf,fg->tbg", window.astype(self.dtype), input_kernel) + bias
    step = lambda carry, projected_step: (self._lstm_step(carry, projected_step, hidden_kernel), None)
    (_, last_hidden), _ = jax.lax.scan(step, carry, projected)
    return last_hidden
