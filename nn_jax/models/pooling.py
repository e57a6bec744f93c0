"""2x2 max-pooling (stride 2, VALID, NHWC) whose gradient needs no scatter: deterministic by construction.

XLA differentiates `reduce_window(max)` with `select_and_scatter`, a scatter-add that GPUs run with
atomics unless XLA's deterministic ops are on, which serialize it. Here the forward pass keeps,
per window, the index of its first maximum (int8: positions 0-3 row by row, what select_and_scatter
picks on ties), and the backward pass places each pooled gradient at that position with a select:
the same numbers as nn.max_pool's gradient (tests/pooling_test.py, ties included), and no op whose
result depends on the order of additions. The fused CPU block (nn_jax/models/conv_pool.py) routes its
gradient with the same two helpers, `window_winner` and `route`.
"""

import jax
import jax.numpy as jnp


def _windows(x):
  """(N, H, W, C) -> (N, P, Q, 4, C): each 2x2 window's values, row by row; an odd last row or column,
  which VALID pooling drops, is left out."""
  n, h, w, c = x.shape
  p, q = h // 2, w // 2
  return x[:, :2 * p, :2 * q].reshape(n, p, 2, q, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, p, q, 4, c)


def window_winner(windows):
  """Max over axis -2 (a window's four positions, row by row) and the index of its first maximum (int8),
  the position select_and_scatter picks on ties."""
  return windows.max(axis=-2), jnp.argmax(windows, axis=-2).astype(jnp.int8)


def route(g, winner, shape):
  """The pooled gradient g placed at each window's winner: a select against the window positions 0-3,
  laid out as `shape` (broadcast against g and winner)."""
  position = jnp.arange(4, dtype=jnp.int8).reshape(shape)
  return jnp.where(winner == position, g, jnp.zeros((), g.dtype))


@jax.custom_vjp
def max_pool_2x2(x):
  """nn.max_pool(x, (2, 2), strides=(2, 2)) for NHWC x."""
  return _windows(x).max(axis=3)


def _forward(x):
  pooled, winner = window_winner(_windows(x))
  return pooled, (winner, x.shape)


def _backward(residuals, g):
  winner, shape = residuals
  n, h, w, c = shape
  p, q = winner.shape[1:3]
  routed = route(g[:, :, :, None, :], winner[:, :, :, None, :], (4, 1))
  dx = routed.reshape(n, p, q, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * p, 2 * q, c)
  return (jnp.pad(dx, ((0, 0), (0, h - 2 * p), (0, w - 2 * q), (0, 0))),)


max_pool_2x2.defvjp(_forward, _backward)
