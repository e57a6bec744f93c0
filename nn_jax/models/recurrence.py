"""Recurrences with a backward pass written by hand (`jax.custom_vjp`), the way fused RNN kernels do it.

Differentiating a scan gives a reverse loop that, per step, multiplies for the inputs' and the
hidden state's gradients *and* for each kernel's, carries the kernels' running sums, and
recomputes or reloads whatever the step's transposed operations need. Here the forward loop also
computes, per step, the coefficients that turn the incoming gradient into the gates' gradients
(they need only the forward's own values); the reverse loop carries only the hidden (and cell)
gradient, does the one matmul per step the recurrence needs (dh_{t-1} = dgates_t · W_hᵀ) and a
few multiplications; and the kernels' gradients come after it as single matmuls over all steps
(the input kernel's from the inputs, the hidden kernel's from the previous hidden states), the
biases as sums.

Cells, parameters and dtypes are those of nn_jax/models/rnn.py: our LSTMCell (gates i, f, g, o),
Flax's GRUCell (r, z, n) and SimpleCell. Gates are computed in the compute dtype, the LSTM's and
GRU's states in float32 (the plain RNN's in the compute dtype), as the cells do; the gradient
coefficients and the reverse loop are float32. `activation` is any elementwise function: its
slope comes from `jax.jvp`. Where it is faster than the differentiated scans is measured in
docs/performance.md.
"""

import functools

import jax
import jax.numpy as jnp

_F32 = jnp.float32


def _sigmoid_slope(s):
  return s * (1 - s)


def _with_slope(activation, x):
  return jax.jvp(activation, (x,), (jnp.ones_like(x),))


# Sequences up to this many steps are unrolled in Python, longer ones loop in a lax.scan. On XLA:CPU
# exp and tanh in a while loop's body run several times slower than the same fusion unrolled, and
# unrolled steps keep their outputs apart instead of copying them into stacked arrays: at 10 steps
# the training step is faster unrolled, at 20 and 32 it is slower (and compiles 2-4x longer), so
# the limit lies between (docs/performance.md).
UNROLL_MAX_STEPS = 16


def _scan(step, carry, xs, unroll_max_steps: int, reverse: bool = False):
  """lax.scan's `(carry, ys)` over the leading axis of `xs`, unrolled in Python when it has at most
  `unroll_max_steps` steps or is a list of each step's values (what an unrolled loop returns as `ys`)."""
  steps = len(xs) if isinstance(xs, list) else jax.tree_util.tree_leaves(xs)[0].shape[0]
  if steps > unroll_max_steps and not isinstance(xs, list):
    return jax.lax.scan(step, carry, xs, reverse=reverse)
  ys = [None] * steps
  for t in reversed(range(steps)) if reverse else range(steps):
    carry, ys[t] = step(carry, xs[t] if isinstance(xs, list) else jax.tree_util.tree_map(lambda a: a[t], xs))
  return carry, ys


def _fields(ys, *indices):
  """Some fields of each step's output tuple, as the reverse loop's `xs`: per step or stacked."""
  if isinstance(ys, list):
    return [tuple(y[i] for i in indices) for y in ys]
  return tuple(ys[i] for i in indices)


def _stacked(ys, index=None):
  """A (time, ...) array of each step's output (its field `index`)."""
  if isinstance(ys, list):
    return jnp.stack([y if index is None else y[index] for y in ys])
  return ys if index is None else ys[index]


def _after_the_loop(x, input_kernel, hidden_kernel, h_prev, d_projected, d_hidden):
  """The gradients of the inputs, the input kernel, its bias and the hidden kernel, each one matmul
  (or sum) over all steps, from the reverse loop's per-step gate gradients (time, batch, gates).
  Time and batch are merged into one axis: XLA:CPU multiplies faster over one contracting axis."""
  merged = lambda a: a.reshape(-1, a.shape[-1]).astype(_F32)
  d_projected, d_hidden = merged(d_projected), merged(d_hidden)
  d_x = (d_projected @ input_kernel.astype(_F32).T).reshape(x.shape).astype(x.dtype)
  d_input_kernel = (merged(x).T @ d_projected).astype(input_kernel.dtype)
  d_hidden_kernel = (merged(h_prev).T @ d_hidden).astype(hidden_kernel.dtype)
  return d_x, d_input_kernel, d_projected.sum(0), d_hidden_kernel


# Each cell: its step, the primal (inference: no residuals), the forward pass that keeps the
# coefficients, the backward pass.

# --- LSTM -----------------------------------------------------------------------------------------

def _lstm_gates(input_kernel, bias, hidden_kernel, h, x):
  z = x @ input_kernel + bias + h.astype(hidden_kernel.dtype) @ hidden_kernel
  i, f, g, o = jnp.split(z, 4, axis=-1)
  return jax.nn.sigmoid(i), jax.nn.sigmoid(f), g, jax.nn.sigmoid(o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def lstm(activation, unroll_max_steps, x, input_kernel, bias, hidden_kernel, c0, h0):
  """The last hidden state. x: (time, batch, features); kernels and bias over gates i, f, g, o."""
  def step(carry, x_t):
    i, f, g, o = _lstm_gates(input_kernel, bias, hidden_kernel, carry[1], x_t)
    c = f * carry[0] + i * activation(g)
    return (c, o * activation(c)), None

  return _scan(step, (c0, h0), x, unroll_max_steps)[0][1]


def _lstm_forward(activation, unroll_max_steps, x, input_kernel, bias, hidden_kernel, c0, h0):
  def step(carry, x_t):
    c_prev, h_prev = carry
    i, f, g, o = _lstm_gates(input_kernel, bias, hidden_kernel, h_prev, x_t)
    g, g_slope = _with_slope(activation, g)
    c = f * c_prev + i * g
    a, a_slope = _with_slope(activation, c)
    i, f, g, o, g_slope = (v.astype(_F32) for v in (i, f, g, o, g_slope))
    # dgates = [dc, dc, dc, dh] * gates_coefficient, with dc = dc_next * f_next + dh * cell_coefficient
    gates_coefficient = jnp.concatenate([g * _sigmoid_slope(i), c_prev * _sigmoid_slope(f), i * g_slope,
                                         a * _sigmoid_slope(o)], -1)
    return (c, o * a), (gates_coefficient, o * a_slope, f, h_prev)

  (_, h), saved = _scan(step, (c0, h0), x, unroll_max_steps)
  return h, (saved, x, input_kernel, hidden_kernel, c0, h0)


def _lstm_backward(activation, unroll_max_steps, residuals, dh_last):
  saved, x, input_kernel, hidden_kernel, c0, h0 = residuals
  kernel_t = hidden_kernel.T

  def step(carry, coefficients):
    dc, dh = carry
    gates, cell, f = coefficients
    dc = dc + dh * cell
    dz = jnp.concatenate([dc, dc, dc, dh], -1) * gates
    return (dc * f, (dz.astype(kernel_t.dtype) @ kernel_t).astype(_F32)), dz

  (dc0, dh0), dz = _scan(step, (jnp.zeros_like(c0, _F32), dh_last.astype(_F32)), _fields(saved, 0, 1, 2),
                         unroll_max_steps, reverse=True)
  dz = _stacked(dz)
  d_x, d_input_kernel, d_bias, d_hidden_kernel = _after_the_loop(x, input_kernel, hidden_kernel, _stacked(saved, 3),
                                                                 dz, dz)
  return (d_x, d_input_kernel, d_bias.astype(hidden_kernel.dtype), d_hidden_kernel, dc0.astype(c0.dtype),
          dh0.astype(h0.dtype))


lstm.defvjp(_lstm_forward, _lstm_backward)


# --- GRU ------------------------------------------------------------------------------------------

def _gru_gates(input_kernel, input_bias, hidden_kernel, hidden_bias_n, h, x):
  hr, hz, hn = jnp.split(h.astype(hidden_kernel.dtype) @ hidden_kernel, 3, axis=-1)
  pr, pz, pn = jnp.split(x @ input_kernel + input_bias, 3, axis=-1)
  hn = hn + hidden_bias_n
  return jax.nn.sigmoid(pr + hr), jax.nn.sigmoid(pz + hz), pn, hn


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def gru(activation, unroll_max_steps, x, input_kernel, input_bias, hidden_kernel, hidden_bias_n, h0):
  """The last hidden state. x: (time, batch, features); kernels over r, z, n; the hidden kernel's
  n part has its own bias, inside the reset gate's product."""
  def step(h, x_t):
    r, z, pn, hn = _gru_gates(input_kernel, input_bias, hidden_kernel, hidden_bias_n, h, x_t)
    return (1 - z) * activation(pn + r * hn) + z * h, None

  return _scan(step, h0, x, unroll_max_steps)[0]


def _gru_forward(activation, unroll_max_steps, x, input_kernel, input_bias, hidden_kernel, hidden_bias_n, h0):
  def step(h, x_t):
    r, z, pn, hn = _gru_gates(input_kernel, input_bias, hidden_kernel, hidden_bias_n, h, x_t)
    n, n_slope = _with_slope(activation, pn + r * hn)
    h_new = (1 - z) * n + z * h
    r, z, n, n_slope, hn = (v.astype(_F32) for v in (r, z, n, n_slope, hn))
    # d_projected = [dh, dh, dh] * input_coefficient; the hidden part's n third is also scaled by r
    to_pre_n = (1 - z) * n_slope
    input_coefficient = jnp.concatenate([to_pre_n * hn * _sigmoid_slope(r), (h - n) * _sigmoid_slope(z),
                                         to_pre_n], -1)
    return h_new, (input_coefficient, r, z, h)

  h, saved = _scan(step, h0, x, unroll_max_steps)
  return h, (saved, x, input_kernel, hidden_kernel, hidden_bias_n, h0)


def _gru_backward(activation, unroll_max_steps, residuals, dh_last):
  saved, x, input_kernel, hidden_kernel, hidden_bias_n, h0 = residuals
  kernel_t = hidden_kernel.T
  to_hidden = lambda dz, r: jnp.concatenate([dz[..., :2 * r.shape[-1]], dz[..., 2 * r.shape[-1]:] * r], -1)

  def step(dh, coefficients):
    inputs, r, z = coefficients
    dz = jnp.concatenate([dh, dh, dh], -1) * inputs
    return dh * z + (to_hidden(dz, r).astype(kernel_t.dtype) @ kernel_t).astype(_F32), dz

  dh0, dz = _scan(step, dh_last.astype(_F32), _fields(saved, 0, 1, 2), unroll_max_steps, reverse=True)
  dz, reset = _stacked(dz), _stacked(saved, 1)
  d_hidden = to_hidden(dz, reset)
  d_x, d_input_kernel, d_input_bias, d_hidden_kernel = _after_the_loop(x, input_kernel, hidden_kernel,
                                                                       _stacked(saved, 3), dz, d_hidden)
  d_bias_n = d_hidden[..., 2 * reset.shape[-1]:].sum((0, 1))
  return (d_x, d_input_kernel, d_input_bias.astype(hidden_kernel.dtype), d_hidden_kernel,
          d_bias_n.astype(hidden_bias_n.dtype), dh0.astype(h0.dtype))


gru.defvjp(_gru_forward, _gru_backward)


# --- plain RNN ------------------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def simple(activation, unroll_max_steps, x, input_kernel, input_bias, hidden_kernel, h0):
  """The last hidden state. x: (time, batch, features)."""
  def step(h, x_t):
    z = x_t @ input_kernel + input_bias + h.astype(hidden_kernel.dtype) @ hidden_kernel
    return activation(z).astype(h.dtype), None

  return _scan(step, h0, x, unroll_max_steps)[0]


def _simple_forward(activation, unroll_max_steps, x, input_kernel, input_bias, hidden_kernel, h0):
  def step(h, x_t):
    z = x_t @ input_kernel + input_bias + h.astype(hidden_kernel.dtype) @ hidden_kernel
    h_new, slope = _with_slope(activation, z)
    return h_new.astype(h.dtype), (slope.astype(_F32), h)

  h, saved = _scan(step, h0, x, unroll_max_steps)
  return h, (saved, x, input_kernel, hidden_kernel, h0)


def _simple_backward(activation, unroll_max_steps, residuals, dh_last):
  saved, x, input_kernel, hidden_kernel, h0 = residuals
  kernel_t = hidden_kernel.T

  def step(dh, coefficients):
    dz = dh * coefficients[0]
    return (dz.astype(kernel_t.dtype) @ kernel_t).astype(_F32), dz

  dh0, dz = _scan(step, dh_last.astype(_F32), _fields(saved, 0), unroll_max_steps, reverse=True)
  dz = _stacked(dz)
  d_x, d_input_kernel, d_input_bias, d_hidden_kernel = _after_the_loop(x, input_kernel, hidden_kernel,
                                                                       _stacked(saved, 1), dz, dz)
  return (d_x, d_input_kernel, d_input_bias.astype(hidden_kernel.dtype), d_hidden_kernel, dh0.astype(h0.dtype))


simple.defvjp(_simple_forward, _simple_backward)


# --- the cells' parameters ------------------------------------------------------------------------

def _side_by_side(params, names, part, dtype):
  """The named Dense layers' kernels (or biases) side by side, over their outputs."""
  return jnp.concatenate([params[n][part] for n in names], axis=0 if part == "bias" else 1).astype(dtype)


# LSTMCell's Dense layers, gate by gate (i, f, g, o): the input's (no bias) and the hidden state's
LSTM_INPUT_LAYERS, LSTM_HIDDEN_LAYERS = ("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho")


def lstm_matrices(params, dtype):
  """LSTMCell's eight Dense layers as an input kernel, a hidden kernel and a bias over the four gates
  (i, f, g, o) side by side."""
  hidden = LSTM_HIDDEN_LAYERS
  return (_side_by_side(params, LSTM_INPUT_LAYERS, "kernel", dtype),
          _side_by_side(params, hidden, "kernel", dtype), _side_by_side(params, hidden, "bias", dtype))


def last_hidden(cell: str, params, carry, window, activation, dtype, unroll_max_steps: int = UNROLL_MAX_STEPS):
  """The last hidden state after `cell` (its Flax parameters `params`) has read `window` (batch,
  time, features) from `carry`: what nn.RNN over that cell returns at the last step."""
  joined = lambda names, part="kernel": _side_by_side(params, names, part, dtype)
  x = window.swapaxes(0, 1).astype(dtype)  # time-major: the loops run over the leading axis
  if cell == "lstm":
    input_kernel, hidden_kernel, bias = lstm_matrices(params, dtype)
    return lstm(activation, unroll_max_steps, x, input_kernel, bias, hidden_kernel, *carry)
  if cell == "gru":
    inputs = ("ir", "iz", "in")
    return gru(activation, unroll_max_steps, x, joined(inputs), joined(inputs, "bias"),
               joined(("hr", "hz", "hn")), params["hn"]["bias"].astype(dtype), carry)
  if cell == "simple":
    return simple(activation, unroll_max_steps, x, joined(("i",)), joined(("i",), "bias"), joined(("h",)), carry)
  raise ValueError(f"no hand-written recurrence for cell {cell!r}")
