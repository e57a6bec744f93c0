"""Recurrences with a backward pass written by hand (`jax.custom_vjp`), the way fused RNN kernels do it.

Every step's input projection is one matmul before the loop, so autodiff already turns its
gradients into single large matmuls. The loop is the hand-written part. Differentiating a scan
gives a reverse loop that, per step, multiplies for the hidden state's gradient *and* for the
hidden kernel's, and carries the kernel's running sum. Here the forward loop keeps what the
backward needs (the gates' pre-activations and the states); the backward loop carries only the
hidden (and cell) gradient and emits each step's gate gradients; the hidden kernel's gradient is
then one matmul over all steps, h_{t-1}ᵀ · dgates, and its bias a sum.

Cells, parameters and dtypes are those of nn_jax/models/rnn.py: our LSTMCell (gates i, f, g, o),
Flax's GRUCell (r, z, n) and SimpleCell. Gates are computed in the compute dtype, the LSTM's and
GRU's states in float32 (the plain RNN's in the compute dtype), as the cells do; the backward
pass's elementwise work is float32. `activation` is any elementwise function: its slope comes
from `jax.jvp`.

Measured against the differentiated scans on a 2-core CPU it is not faster (docs/performance.md),
so `recurrence=auto` does not pick it.
"""

import functools

import jax
import jax.numpy as jnp

_F32 = jnp.float32


def _sigmoid_slope(s):
  return s * (1 - s)


def _with_slope(activation, x):
  return jax.jvp(activation, (x,), (jnp.ones_like(x),))


def _shifted(first, rest):
  """[first, rest[0], ..., rest[-2]]: each step's previous state, from the states after each step."""
  return jnp.concatenate([first[None].astype(rest.dtype), rest[:-1]])


# Each cell below: the primal (inference: no residuals), the forward pass that keeps what the backward
# needs, and the backward pass. The backward computes every coefficient that does not depend on the
# incoming gradient before its loop, over all steps at once; the loop itself only multiplies, adds and
# runs the one matmul per step that the recurrence needs (dh_{t-1} = dgates_t · W_hᵀ).

# --- LSTM -----------------------------------------------------------------------------------------

def _lstm_step(activation, hidden_kernel, carry, p):
  c, h = carry
  z = p + h.astype(hidden_kernel.dtype) @ hidden_kernel
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * activation(g)
  return (c, jax.nn.sigmoid(o) * activation(c)), z


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def lstm(activation, unroll, projected, hidden_kernel, c0, h0):
  """The last hidden state. projected: (time, batch, 4H), x·W_i + b for gates i, f, g, o."""
  step = lambda carry, p: (_lstm_step(activation, hidden_kernel, carry, p)[0], None)
  return jax.lax.scan(step, (c0, h0), projected, unroll=unroll)[0][1]


def _lstm_forward(activation, unroll, projected, hidden_kernel, c0, h0):
  def step(carry, p):
    (c, h), z = _lstm_step(activation, hidden_kernel, carry, p)
    return (c, h), (z, c)

  (_, h), (z, c) = jax.lax.scan(step, (c0, h0), projected, unroll=unroll)
  return h, (z, c, c0, h0, hidden_kernel)


def _lstm_backward(activation, unroll, residuals, dh_last):
  z, c, c0, h0, hidden_kernel = residuals
  i, f, g, o = jnp.split(z.astype(_F32), 4, axis=-1)
  i, f, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jax.nn.sigmoid(o)
  g, g_slope = _with_slope(activation, g)
  c = c.astype(_F32)
  a, a_slope = _with_slope(activation, c)
  c_prev = _shifted(c0, c)
  h_prev = _shifted(h0, o * a)
  # dgates = [dc, dc, dc, dh] * gate_coefficients, with dc = dc_next * f_next + dh * cell_coefficient
  gate_coefficients = jnp.concatenate([g * _sigmoid_slope(i), c_prev * _sigmoid_slope(f), i * g_slope,
                                       a * _sigmoid_slope(o)], -1)
  cell_coefficient = o * a_slope
  kernel_t = hidden_kernel.T

  def step(carry, coefficients):
    dc, dh = carry
    gates, cell, forget = coefficients
    dc = dc + dh * cell
    dz = jnp.concatenate([dc, dc, dc, dh], -1) * gates
    return (dc * forget, (dz.astype(kernel_t.dtype) @ kernel_t).astype(_F32)), dz

  (dc0, dh0), dz = jax.lax.scan(step, (jnp.zeros_like(c0, _F32), dh_last.astype(_F32)),
                                (gate_coefficients, cell_coefficient, f), reverse=True, unroll=unroll)
  d_kernel = jnp.einsum("tbh,tbg->hg", h_prev, dz)
  return (dz.astype(hidden_kernel.dtype), d_kernel.astype(hidden_kernel.dtype), dc0.astype(c0.dtype),
          dh0.astype(h0.dtype))


lstm.defvjp(_lstm_forward, _lstm_backward)


# --- GRU ------------------------------------------------------------------------------------------

def _gru_step(activation, hidden_kernel, hidden_bias_n, h, p):
  hr, hz, hn = jnp.split(h.astype(hidden_kernel.dtype) @ hidden_kernel, 3, axis=-1)
  hn = hn + hidden_bias_n
  pr, pz, pn = jnp.split(p, 3, axis=-1)
  r, z = jax.nn.sigmoid(pr + hr), jax.nn.sigmoid(pz + hz)
  return (1 - z) * activation(pn + r * hn) + z * h, jnp.concatenate([pr + hr, pz + hz, hn], -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def gru(activation, unroll, projected, hidden_kernel, hidden_bias_n, h0):
  """The last hidden state. projected: (time, batch, 3H), x·W_i + b_i for r, z, n; the hidden
  kernel's n part has its own bias, inside the reset gate's product."""
  step = lambda h, p: (_gru_step(activation, hidden_kernel, hidden_bias_n, h, p)[0], None)
  return jax.lax.scan(step, h0, projected, unroll=unroll)[0]


def _gru_forward(activation, unroll, projected, hidden_kernel, hidden_bias_n, h0):
  def step(h, p):
    h, pre = _gru_step(activation, hidden_kernel, hidden_bias_n, h, p)
    return h, (pre, h)

  h, (pre, hs) = jax.lax.scan(step, h0, projected, unroll=unroll)
  return h, (pre, hs, projected, h0, hidden_kernel, hidden_bias_n)


def _gru_backward(activation, unroll, residuals, dh_last):
  pre, hs, projected, h0, hidden_kernel, hidden_bias_n = residuals
  r, z, hn = jnp.split(pre.astype(_F32), 3, axis=-1)
  r, z = jax.nn.sigmoid(r), jax.nn.sigmoid(z)
  n, n_slope = _with_slope(activation, jnp.split(projected.astype(_F32), 3, axis=-1)[2] + r * hn)
  h_prev = _shifted(h0, hs.astype(_F32))
  # d_projected = [dh, dh, dh] * input_coefficients; the hidden part's n third is scaled by r too
  to_pre_n = (1 - z) * n_slope
  input_coefficients = jnp.concatenate([to_pre_n * hn * _sigmoid_slope(r), (h_prev - n) * _sigmoid_slope(z),
                                        to_pre_n], -1)
  hidden_coefficients = input_coefficients.at[..., 2 * r.shape[-1]:].multiply(r)
  kernel_t = hidden_kernel.T

  def step(dh, coefficients):
    inputs, hidden, keep = coefficients
    dh3 = jnp.concatenate([dh, dh, dh], -1)
    d_hidden = dh3 * hidden
    return dh * keep + (d_hidden.astype(kernel_t.dtype) @ kernel_t).astype(_F32), (dh3 * inputs, d_hidden)

  dh0, (dz, d_hidden) = jax.lax.scan(step, dh_last.astype(_F32), (input_coefficients, hidden_coefficients, z),
                                     reverse=True, unroll=unroll)
  d_kernel = jnp.einsum("tbh,tbg->hg", h_prev, d_hidden)
  d_bias_n = d_hidden[..., 2 * r.shape[-1]:].sum((0, 1))
  return (dz.astype(hidden_kernel.dtype), d_kernel.astype(hidden_kernel.dtype),
          d_bias_n.astype(hidden_bias_n.dtype), dh0.astype(h0.dtype))


gru.defvjp(_gru_forward, _gru_backward)


# --- plain RNN ------------------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def simple(activation, unroll, projected, hidden_kernel, h0):
  """The last hidden state. projected: (time, batch, H), x·W_i + b."""
  step = lambda h, p: (activation(p + h.astype(hidden_kernel.dtype) @ hidden_kernel).astype(h.dtype), None)
  return jax.lax.scan(step, h0, projected, unroll=unroll)[0]


def _simple_forward(activation, unroll, projected, hidden_kernel, h0):
  def step(h, p):
    z = p + h.astype(hidden_kernel.dtype) @ hidden_kernel
    return activation(z).astype(h.dtype), z

  h, z = jax.lax.scan(step, h0, projected, unroll=unroll)
  return h, (z, h0, hidden_kernel)


def _simple_backward(activation, unroll, residuals, dh_last):
  z, h0, hidden_kernel = residuals
  h, slope = _with_slope(activation, z.astype(_F32))
  h_prev = _shifted(h0, h.astype(h0.dtype).astype(_F32))  # the states as the forward pass kept them
  kernel_t = hidden_kernel.T

  def step(dh, slope):
    dz = dh * slope
    return (dz.astype(kernel_t.dtype) @ kernel_t).astype(_F32), dz

  dh0, dz = jax.lax.scan(step, dh_last.astype(_F32), slope, reverse=True, unroll=unroll)
  d_kernel = jnp.einsum("tbh,tbg->hg", h_prev, dz)
  return dz.astype(hidden_kernel.dtype), d_kernel.astype(hidden_kernel.dtype), dh0.astype(h0.dtype)


simple.defvjp(_simple_forward, _simple_backward)


# --- the cells' parameters ------------------------------------------------------------------------

def last_hidden(cell: str, params, carry, window, activation, dtype, unroll: int = 1):
  """The last hidden state after `cell` (its Flax parameters `params`) has read `window` (batch,
  time, features) from `carry`: what nn.RNN over that cell returns at the last step."""
  def kernels(names, bias_names=()):
    kernel = jnp.concatenate([params[n]["kernel"] for n in names], axis=1).astype(dtype)
    bias = jnp.concatenate([params[n]["bias"] for n in bias_names]).astype(dtype) if bias_names else None
    return kernel, bias

  def project(kernel, bias):  # every step at once, time-major
    return jnp.einsum("btf,fg->tbg", window.astype(dtype), kernel) + bias

  if cell == "lstm":
    input_kernel, _ = kernels(("ii", "if", "ig", "io"))
    hidden_kernel, bias = kernels(("hi", "hf", "hg", "ho"), ("hi", "hf", "hg", "ho"))
    c0, h0 = carry
    return lstm(activation, unroll, project(input_kernel, bias), hidden_kernel, c0, h0)
  if cell == "gru":
    input_kernel, input_bias = kernels(("ir", "iz", "in"), ("ir", "iz", "in"))
    hidden_kernel, _ = kernels(("hr", "hz", "hn"))
    return gru(activation, unroll, project(input_kernel, input_bias), hidden_kernel,
               params["hn"]["bias"].astype(dtype), carry)
  if cell == "simple":
    input_kernel, input_bias = kernels(("i",), ("i",))
    hidden_kernel, _ = kernels(("h",))
    return simple(activation, unroll, project(input_kernel, input_bias), hidden_kernel, carry)
  raise ValueError(f"no hand-written recurrence for cell {cell!r}")
