"""Three more ways to loop the recurrent model's cells, for `make bench` to compare with the model's own.

The model (nn_jax/models/rnn.py) offers `scan`, `optimized` and `custom_vjp`.
`BenchSequenceRegressor` has its fields, its parameters and its numbers
(tests/bench_recurrences_test.py), built from the model module's public
pieces, and loops the cell one of these ways:

  nn_scan    nn.scan lifting the cell class directly (what nn.RNN builds on)
  unrolled   nn.RNN with the loop fully unrolled
  fused      LSTM only: four gates in one matmul, the input projection of every step before the loop
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.models import recurrence as recurrence_lib
from nn_jax.models import rnn
from nn_jax.models.activations import ACTIVATIONS

RECURRENCES = ("nn_scan", "unrolled", "fused")


class BenchSequenceRegressor(nn.Module):
  """rnn.SequenceRegressor with `recurrence` one of RECURRENCES."""
  cell: str = "lstm"
  units: int = 50
  activation: str = "tanh"
  outputs: int = 1
  recurrence: str = "nn_scan"
  dtype: jnp.dtype = jnp.float32
  rng_streams: ClassVar[tuple[str, ...]] = ()
  input_rank: ClassVar[int] = 2

  @nn.compact
  def __call__(self, window, train: bool = False):
    head = nn.Dense(self.outputs, dtype=self.dtype, name="head")
    carry = rnn.initial_carry(self.cell, self.units, window.shape[0], self.dtype)
    cell_kwargs = {"features": self.units, "activation_fn": ACTIVATIONS[self.activation], "dtype": self.dtype}
    if self.recurrence == "nn_scan":
      scanned = nn.scan(rnn.CELLS[self.cell], variable_broadcast="params", split_rngs={"params": False},
                        in_axes=1, out_axes=1)
      _, hidden_per_step = scanned(**cell_kwargs, name="cell")(carry, window)
      last_hidden = hidden_per_step[:, -1]
    elif self.recurrence == "unrolled":
      cell = rnn.make_cell(self.cell, self.units, self.activation, self.dtype)
      last_hidden = nn.RNN(cell, unroll=window.shape[1], name="rnn")(window, initial_carry=carry)[:, -1]
    elif self.recurrence == "fused" and self.cell == "lstm":
      cell = rnn.make_cell(self.cell, self.units, self.activation, self.dtype)
      if self.is_initializing():
        cell(carry, window[:, 0])
      last_hidden = self._fused_lstm(cell.variables["params"], carry, window)
    else:
      raise ValueError(f"recurrence {self.recurrence!r} is not one of {RECURRENCES} (fused: LSTM only)")
    return head(last_hidden).astype(jnp.float32)

  def _fused_lstm(self, params, carry, window):
    """The LSTM with its cell's own parameters, its four gates as one matmul per step and the
    input projection of every step computed before the loop as one matmul."""
    input_kernel, hidden_kernel, bias = recurrence_lib.lstm_matrices(params, self.dtype)
    projected = jnp.einsum("btf,fg->tbg", window.astype(self.dtype), input_kernel) + bias
    activation = ACTIVATIONS[self.activation]
    step = lambda carry, step_input: (rnn.lstm_step(carry, step_input, hidden_kernel, activation, self.dtype), None)
    (_, last_hidden), _ = jax.lax.scan(step, carry, projected)
    return last_hidden
