"""Recurrent sequence regressors: a plain RNN, LSTM or GRU cell scanned over time, then a Dense head."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.models.activations import ACTIVATIONS


class LSTMCell(nn.LSTMCell):
  """Flax's LSTMCell (same equations, parameter names and shapes) with Keras' forget-gate bias init.

  Keras initializes the forget gate's bias to 1 (`unit_forget_bias=True`), so
  the cell starts out remembering and gradients reach early steps; Flax
  initializes every bias to 0. `forget_bias=0.0` gives Flax's cell exactly.
  """
  forget_bias: float = 1.0

  @nn.compact
  def __call__(self, carry, inputs):
    c, h = carry
    dense_i = functools.partial(nn.Dense, h.shape[-1], use_bias=False, kernel_init=self.kernel_init,
                                dtype=self.dtype, param_dtype=self.param_dtype)

    def dense_h(name, bias_init=self.bias_init):
      return nn.Dense(h.shape[-1], kernel_init=self.recurrent_kernel_init, bias_init=bias_init,
                      dtype=self.dtype, param_dtype=self.param_dtype, name=name)

    i = self.gate_fn(dense_i(name="ii")(inputs) + dense_h("hi")(h))
    f = self.gate_fn(dense_i(name="if")(inputs) + dense_h("hf", nn.initializers.constant(self.forget_bias))(h))
    g = self.activation_fn(dense_i(name="ig")(inputs) + dense_h("hg")(h))
    o = self.gate_fn(dense_i(name="io")(inputs) + dense_h("ho")(h))
    new_c = f * c + i * g
    new_h = o * self.activation_fn(new_c)
    return (new_c, new_h), new_h


# `activation` replaces each cell's tanh (the candidate and, in the LSTM, the
# cell output), as Keras' `activation=` does; gates stay sigmoid.
CELLS = {"simple": nn.SimpleCell, "lstm": LSTMCell, "gru": nn.GRUCell}


# How the cell is looped over time; all give the same numbers with the same parameters.
# "scan" (nn.RNN's compiled loop) is the default: on the 2-core CPU none of the three was
# consistently fastest at both batch 32 and 256 (README "Performance").
RECURRENCES = ("scan", "unrolled", "fused")


class SequenceRegressor(nn.Module):
  """Reads a (batch, time, features) window and predicts the next value(s) from the last hidden state."""
  cell: str = "lstm"
  units: int = 50
  activation: str = "tanh"
  outputs: int = 1
  recurrence: str = "scan"  # "unrolled": nn.RNN fully unrolled; "fused" (LSTM only): see _fused_lstm
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32

  @nn.compact
  def __call__(self, window):
    cell = CELLS[self.cell](features=self.units, activation_fn=ACTIVATIONS[self.activation], dtype=self.dtype,
                            name="cell")
    head = nn.Dense(self.outputs, dtype=self.dtype, name="head")
    if self.recurrence == "fused":
      return head(self._fused_lstm(cell, window)).astype(jnp.float32)
    # The LSTM's and GRU's state updates promote to float32; the plain RNN's state is its
    # output, in the compute dtype, so its initial carry must be too.
    initial_carry = jnp.zeros((window.shape[0], self.units), self.dtype) if self.cell == "simple" else None
    unroll = window.shape[1] if self.recurrence == "unrolled" else 1
    # nn.RNN scans the cell over the time axis (axis 1): one compiled loop, not a Python one.
    hidden_per_step = nn.RNN(cell, unroll=unroll, name="rnn")(window, initial_carry=initial_carry)
    return head(hidden_per_step[:, -1]).astype(jnp.float32)

  def _fused_lstm(self, cell, window):
    """The LSTM with its cell's own parameters, its four gates as one matmul per step and the
    input projection of every step hoisted out of the loop into one matmul."""
    if self.is_initializing():  # create the cell's parameters, exactly as the other recurrences do
      cell(cell.initialize_carry(self.make_rng("params"), window[:, 0].shape), window[:, 0])
    params = cell.variables["params"]
    gates = ("i", "f", "g", "o")
    input_kernel = jnp.concatenate([params["i" + g]["kernel"] for g in gates], axis=1).astype(self.dtype)
    hidden_kernel = jnp.concatenate([params["h" + g]["kernel"] for g in gates], axis=1).astype(self.dtype)
    bias = jnp.concatenate([params["h" + g]["bias"] for g in gates]).astype(self.dtype)
    projected = jnp.einsum("btf,fg->tbg", window.astype(self.dtype), input_kernel) + bias
    activation = ACTIVATIONS[self.activation]

    def step(carry, projected_step):
      c, h = carry
      i, f, g, o = jnp.split(projected_step + h.astype(self.dtype) @ hidden_kernel, 4, axis=-1)
      c = nn.sigmoid(f) * c + nn.sigmoid(i) * activation(g)
      return (c, nn.sigmoid(o) * activation(c)), None

    zeros = jnp.zeros((window.shape[0], self.units), jnp.float32)
    (_, last_hidden), _ = jax.lax.scan(step, (zeros, zeros), projected)
    return last_hidden
