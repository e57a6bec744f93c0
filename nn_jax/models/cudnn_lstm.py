"""The LSTM cell's parameters in cuDNN's weight layout and back, and the cell looped by cuDNN on a GPU.

cuDNN's LSTM (through `jax.experimental.rnn`) takes one flat weight vector:
W_ih (4H x I), W_hh (4H x H), b_ih (4H), b_hh (4H), each with the gates in the order
i, f, g, o, and a (out x in) layout. Our LSTMCell (nn_jax/models/rnn.py) keeps eight Dense layers:
the input kernels ii, if, ig, io (I x H, no bias) and the hidden kernels hi, hf, hg, ho (H x H, with
the bias). So W_ih is the input kernels side by side, transposed; W_hh the hidden ones; b_hh their
biases; b_ih zeros. `pack` is a reshape and a concatenation, so gradients flow through it back to
the cell's own parameters: a checkpoint stays the cell's, whichever way it was looped.

cuDNN computes tanh only: the article's relu LSTM keeps a JAX recurrence. The packing is tested on
CPU against `jax.experimental.rnn`'s reference implementation (tests/cudnn_lstm_test.py); the cuDNN
kernel itself runs only on an NVIDIA GPU.
"""

import jax.numpy as jnp
from jax.experimental import rnn

from nn_jax.models import recurrence

def pack(params, dtype=jnp.float32):
  """The cell's parameters as cuDNN's flat weight vector (one layer, one direction)."""
  input_kernel, hidden_kernel, bias = recurrence.lstm_matrices(params, dtype)
  return jnp.concatenate([input_kernel.T.ravel(), hidden_kernel.T.ravel(), jnp.zeros_like(bias), bias])


def unpack(weights, input_size: int, hidden_size: int) -> dict:
  """cuDNN's flat weight vector (one layer, one direction, b_ih zero) as the cell's parameters."""
  w_ih, w_hh, b_ih, b_hh = (part[0] for part in rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, False))
  gates = lambda matrix: jnp.split(matrix, 4, axis=0)
  params = {name: {"kernel": block.T} for name, block in zip(recurrence.LSTM_INPUT_LAYERS, gates(w_ih))}
  params.update({name: {"kernel": block.T, "bias": b}
                 for name, block, b in zip(recurrence.LSTM_HIDDEN_LAYERS, gates(w_hh), jnp.split(b_ih + b_hh, 4))})
  return params


def last_hidden(params, carry, window):
  """The last hidden state of the tanh LSTM over `window` (batch, time, features), by cuDNN."""
  c, h = carry
  batch, steps, features = window.shape
  hidden_size = h.shape[-1]
  _, h_n, _ = rnn.lstm(window.astype(jnp.float32), h[None], c[None], pack(params), jnp.full((batch,), steps, jnp.int32),
                       input_size=features, hidden_size=hidden_size, num_layers=1, dropout=0.0, bidirectional=False)
  return h_n[0]
