"""Recurrent sequence regressors: a plain RNN, LSTM or GRU cell scanned over time, then a Dense head."""

import functools
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.common.errors import require
from nn_jax.models import cudnn_lstm
from nn_jax.models import recurrence as recurrence_lib
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


# How the cell is looped over time; all give the same numbers with the same parameters:
#   scan        nn.RNN: the cell in one compiled loop (any cell), differentiated by JAX
#   optimized   LSTM only: Flax's OptimizedLSTMCell's computation (four gates' input and hidden
#               projections as one matmul each) on LSTMCell's parameters
#   custom_vjp  any cell: a backward pass written by hand (nn_jax/models/recurrence.py)
#   cudnn       the tanh LSTM on an NVIDIA GPU: cuDNN's kernel through jax.experimental.rnn, on the cell's
#               parameters packed into cuDNN's layout (nn_jax/models/cudnn_lstm.py)
#   auto        the fastest measured (docs/performance.md): on CPU custom_vjp, for every cell and
#               batch size measured; elsewhere, where neither custom_vjp nor cudnn has been measured,
#               optimized for the LSTM and scan for the plain RNN and the GRU
# benchmarks/recurrences.py loops the same cells three more ways, which `make bench` compares.
RECURRENCES = ("auto", "scan", "optimized", "custom_vjp", "cudnn")
LSTM_ONLY_RECURRENCES = ("optimized", "cudnn")


def resolve_recurrence(recurrence: str, cell: str, backend: str | None = None) -> str:
  if recurrence != "auto":
    return recurrence
  if (backend or jax.default_backend()) == "cpu":
    return "custom_vjp"
  return "optimized" if cell == "lstm" else "scan"


class SequenceRegressor(nn.Module):
  """Reads a (batch, time, features) window and predicts the next value(s) from the last hidden state."""
  cell: str = "lstm"
  units: int = 50
  activation: str = "tanh"
  outputs: int = 1
  recurrence: str = "auto"  # one of RECURRENCES
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32
  rng_streams: ClassVar[tuple[str, ...]] = ()
  input_rank: ClassVar[int] = 2

  @classmethod
  def check(cls, fields: dict, input_shape: tuple) -> None:
    for key, allowed in (("cell", tuple(CELLS)), ("recurrence", RECURRENCES), ("activation", tuple(ACTIVATIONS))):
      require(fields.get(key, getattr(cls, key)) in allowed,
              f"config.model.{key} {fields.get(key)!r} is not one of {', '.join(allowed)}")
    cell, recurrence = fields.get("cell", cls.cell), fields.get("recurrence", cls.recurrence)
    require(recurrence not in LSTM_ONLY_RECURRENCES or cell == "lstm",
            f"config.model.recurrence {recurrence!r} is for the LSTM only, not {cell!r}; use scan")
    require(recurrence != "cudnn" or fields.get("activation", cls.activation) == "tanh",
            "config.model.recurrence 'cudnn': cuDNN's LSTM computes tanh only; for another activation use "
            "auto, scan or custom_vjp")

  @classmethod
  def backend_choices(cls, fields: dict, backend: str) -> dict:
    recurrence = fields.get("recurrence", cls.recurrence)
    require(recurrence != "cudnn" or backend == "gpu",
            f"config.model.recurrence 'cudnn' runs on an NVIDIA GPU; this backend is {backend}; use auto")
    return {"recurrence": resolve_recurrence(recurrence, fields.get("cell", cls.cell), backend)}

  @nn.compact
  def __call__(self, window, train: bool = False):
    head = nn.Dense(self.outputs, dtype=self.dtype, name="head")
    last_hidden = self._recur(resolve_recurrence(self.recurrence, self.cell), window)
    return head(last_hidden).astype(jnp.float32)

  def _recur(self, recurrence: str, window):
    """The last hidden state after the cell has read `window`, looped the `recurrence` way."""
    carry = initial_carry(self.cell, self.units, window.shape[0], self.dtype)
    cell = make_cell(self.cell, self.units, self.activation, self.dtype)
    if recurrence in ("custom_vjp", "optimized", "cudnn"):  # all compute on the cell's parameters
      if self.is_initializing():  # create the cell's parameters, exactly as scan does
        cell(carry, window[:, 0])
      if recurrence == "custom_vjp":
        return recurrence_lib.last_hidden(self.cell, cell.variables["params"], carry, window,
                                          ACTIVATIONS[self.activation], self.dtype)
      if recurrence == "cudnn":
        return cudnn_lstm.last_hidden(cell.variables["params"], carry, window)
      return self._optimized_lstm(cell.variables["params"], carry, window)
    # nn.RNN scans the cell over the time axis (axis 1): one compiled loop, not a Python one.
    return nn.RNN(cell, name="rnn")(window, initial_carry=carry)[:, -1]

  def _optimized_lstm(self, params, carry, window):
    """Flax's OptimizedLSTMCell's computation (its parameters are LSTMCell's): per step, the four
    gates' input and hidden projections as one matmul each. Written out rather than called, so
    the cell keeps Keras' forget-gate bias init (tests/rnn_test.py checks it equals the Flax cell)."""
    input_kernel, hidden_kernel, bias = recurrence_lib.lstm_matrices(params, self.dtype)
    activation = ACTIVATIONS[self.activation]
    step = lambda carry, inputs: (lstm_step(carry, inputs.astype(self.dtype) @ input_kernel + bias, hidden_kernel,
                                            activation, self.dtype), None)
    (_, last_hidden), _ = jax.lax.scan(step, carry, window.swapaxes(0, 1))
    return last_hidden


def make_cell(cell: str, units: int, activation: str, dtype) -> nn.Module:
  """The model's cell, named "cell": its parameters are the model's under that name."""
  return CELLS[cell](features=units, activation_fn=ACTIVATIONS[activation], dtype=dtype, name="cell")


def initial_carry(cell: str, units: int, batch: int, dtype):
  """Zeros, as the cells' initialize_carry gives: the LSTM's (c, h) and the GRU's h in float32;
  the plain RNN's state is its output, in the compute dtype."""
  zeros = jnp.zeros((batch, units), dtype if cell == "simple" else jnp.float32)
  return (zeros, zeros) if cell == "lstm" else zeros


def lstm_step(carry, projected_input, hidden_kernel, activation, dtype):
  """LSTMCell's update, given the step's input projection (bias included)."""
  c, h = carry
  i, f, g, o = jnp.split(projected_input + h.astype(dtype) @ hidden_kernel, 4, axis=-1)
  c = nn.sigmoid(f) * c + nn.sigmoid(i) * activation(g)
  return c, nn.sigmoid(o) * activation(c)
