"""3x3 valid convolution + bias + relu + 2x2 max-pool as one op whose backward pass is written for XLA:CPU.

`conv_pool_relu(x, kernel, bias)` equals
`nn.max_pool(nn.relu(conv(x, kernel) + bias), (2, 2), strides=(2, 2))` for a
stride-1, VALID convolution and NHWC / HWIO layouts (tests/models_test.py).

Why a custom VJP: XLA:CPU differentiates `conv_general_dilated` and
`reduce_window` with generic kernels that leave the matmul units idle, and
left to itself it materializes transposes and sliced copies that cost more
than the matmuls. Here every training-time FLOP is a matmul on a well-shaped
operand, and the memory-bound steps are single passes:

- relu and max commute, so relu(max(conv) + bias) is computed once per pooled
  output; the conv outputs that VALID pooling drops (an odd last row or
  column) are never computed.
- The pool remembers which window position won (int8, the first maximum, as
  `select_and_scatter` picks it) and the backward routes the gradient there.
- Layers with few input channels (an image's 1 or 3) multiply each pooled
  output's 4x4 input neighbourhood (16*C values) by the kernel placed at the
  four window positions (16*C x 4*F, one matmul with a useful depth); deeper
  layers multiply 3x3 patches (gathered as contiguous 3*C runs) by the kernel.
- The kernel gradient is dy^T @ patches with dy^T built directly in that
  layout from the small pooled gradient, so no large transpose is made.
- The batch is trained in slices (training_slices), each its own chain of ops.

Without differentiation (evaluation, prediction) the op runs XLA's own
convolution, which is fast in the forward direction on every backend.
Forward-mode autodiff (jax.jvp) is not defined for custom VJPs.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nn_jax.models import pooling

# Up to this many input channels a pooled output's 16*C-deep neighbourhood is the better-shaped matmul
# operand; deeper, its 3x3 patches (9*C) are, holding less redundancy.
NEIGHBOURHOOD_MAX_CHANNELS = 4
# Training runs the batch in slices of about SLICE_IMAGES images: a slice's activations stay in
# cache, and the two cores work on different slices at once. On the 2-core CPU, batch 200 in one
# pass (`python -m benchmarks.bench --only cnn_train_microbatch_200`), training_slices returning
# 1, 4, 8, 16 slices: 48, 44, 38-42 and 40 ms per step, the last with twice the compile time. The
# trainer's microbatches of 50 (models/cnn.py) take 2 slices: 27.3 ms per step against 28.5 ms
# with MAX_SLICES = 1 (`python -m benchmarks.bench --only cnn_train`; `python -c "import sys; from
# nn_jax.models import conv_pool; conv_pool.MAX_SLICES = 1; sys.argv = ['b', '--case', 'cnn_train'];
# from benchmarks import bench; bench.main()"`).
SLICE_IMAGES = 25
MAX_SLICES = 8


def _pooled_grid(x):
  """Pooled output size (P, Q) of a VALID 3x3 conv + 2x2/2 pool: floor((H - 2) / 2)."""
  return (x.shape[1] - 2) // 2, (x.shape[2] - 2) // 2


def _xla_conv_pool_relu(x, kernel, bias):
  y = lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  pooled = lax.reduce_window(y, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  return jnp.maximum(pooled + bias, 0)


def supports(input_shape, kernel_shape) -> bool:
  """Whether the op computes this block: NHWC input with at least one pooled output, a 3x3 HWIO
  kernel over all its channels. Other shapes must use XLA's ops (models/cnn.py does)."""
  return (len(input_shape) == 4 and len(kernel_shape) == 4 and tuple(kernel_shape[:2]) == (3, 3)
          and kernel_shape[2] == input_shape[-1] and min(input_shape[1:3]) >= 4)


@jax.custom_vjp
def conv_pool_relu(x, kernel, bias):
  """(B, H, W, C) x (3, 3, C, F) x (F,) -> (B, floor((H-2)/2), floor((W-2)/2), F).

  Stride-1 VALID 3x3 convolution, then a 2x2/2 VALID max-pool: the only block its hand-written
  gradient computes; any other shape is refused rather than given a wrong gradient.
  """
  _check(x, kernel)
  return _xla_conv_pool_relu(x, kernel, bias)


def _check(x, kernel) -> None:
  if not supports(x.shape, kernel.shape):
    raise ValueError(f"conv_pool_relu computes a 3x3 kernel over all input channels and a 2x2 pool; "
                     f"got input {x.shape}, kernel {kernel.shape}")


# --- 3x3 patches (deep layers) ------------------------------------------------------------------


def _patch_run_starts(shape, out_h, out_w):
  """Flat offsets of the contiguous (j, c) runs of 3*C values that make up each 3x3 patch, in
  (image, row, column, i) order."""
  b, h, w, c = shape
  row, col, i = np.meshgrid(np.arange(out_h), np.arange(out_w), np.arange(3), indexing="ij")
  per_image = ((row + i) * w + col) * c
  return (np.arange(b)[:, None] * (h * w * c) + per_image.reshape(1, -1)).reshape(-1, 1).astype(np.int32)


def _patches(x, out_h, out_w):
  """(B*out_h*out_w, 9C): row (b, r, c), column (i, j, ch) = x[b, r+i, c+j, ch]."""
  b, c = x.shape[0], x.shape[-1]
  dims = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(), start_index_map=(0,))
  runs = lax.gather(x.reshape(-1), jnp.asarray(_patch_run_starts(x.shape, out_h, out_w)), dims,
                    slice_sizes=(3 * c,), mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
  return runs.reshape(b * out_h * out_w, 9 * c)


def _patches_transpose(d_patches, shape, out_h, out_w):
  """The adjoint of _patches: each patch gradient added back onto the pixels it came from."""
  b, h, w, c = shape
  d = d_patches.reshape(b, out_h, out_w, 3, 3, c)
  return sum(jnp.pad(d[:, :, :, i, j], ((0, 0), (i, h - out_h - i), (j, w - out_w - j), (0, 0)))
             for i in range(3) for j in range(3))


def _patches_fwd(x, kernel, bias):
  p, q = _pooled_grid(x)
  b, f = x.shape[0], kernel.shape[-1]
  patches = _patches(x, 2 * p, 2 * q)
  y = (patches @ kernel.reshape(-1, f)).reshape(b, p, 2, q, 2, f)
  m, winner = pooling.window_winner(y.transpose(0, 1, 3, 2, 4, 5).reshape(b, p, q, 4, f))
  out = jnp.maximum(m + bias, 0)
  return out, (x, patches, kernel, winner, out > 0)


def _patches_bwd(res, g):
  x, patches, kernel, winner, positive = res
  c, f = kernel.shape[2:]
  p, q = winner.shape[1:3]
  g = jnp.where(positive, g, 0)
  # dy^T (F, B, P, 2, Q, 2) built from the small transposed g and winner: no large transpose.
  gt, wt = (a.transpose(3, 0, 1, 2)[:, :, :, None, :, None] for a in (g, winner))
  dy_t = pooling.route(gt, wt, (1, 1, 1, 2, 1, 2)).reshape(f, -1)
  d_kernel = (dy_t @ patches).T.reshape(3, 3, c, f)
  dy = pooling.route(g[:, :, None, :, None, :], winner[:, :, None, :, None, :], (1, 1, 2, 1, 2, 1)).reshape(-1, f)
  dx = _patches_transpose(dy @ kernel.reshape(-1, f).T, x.shape, 2 * p, 2 * q)
  return dx, d_kernel, g.sum(axis=(0, 1, 2))


# --- 4x4 neighbourhoods (input layers) ----------------------------------------------------------


def _neighbourhoods(x, p, q, transposed=False):
  """The 4x4 input neighbourhood of each pooled output: (B*P*Q, 16C), columns (u, v, ch); or its
  transpose (16C, B*P*Q), written directly."""
  taps = [x[:, u:u + 2 * p:2, v:v + 2 * q:2, :] for u in range(4) for v in range(4)]
  if transposed:
    return jnp.stack([t.transpose(3, 0, 1, 2) for t in taps]).reshape(16 * x.shape[-1], -1)
  return jnp.concatenate(taps, axis=-1).reshape(-1, 16 * x.shape[-1])


def _placed_kernel(kernel):
  """(16C, 4F): the 3x3 kernel placed in a 4x4 neighbourhood at each window position (a, c)."""
  c, f = kernel.shape[2:]
  placed = [jnp.pad(kernel, ((a, 1 - a), (col, 1 - col), (0, 0), (0, 0))) for a in (0, 1) for col in (0, 1)]
  return jnp.stack(placed, axis=3).reshape(16 * c, 4 * f)


def _fold_placed_kernel(d_placed, c, f):
  """The adjoint of _placed_kernel."""
  d = d_placed.reshape(4, 4, c, 4, f)
  return sum(d[a:a + 3, col:col + 3, :, 2 * a + col] for a in (0, 1) for col in (0, 1))


def _neighbourhood_fwd(x, kernel, bias):
  p, q = _pooled_grid(x)
  b, f = x.shape[0], kernel.shape[-1]
  y = (_neighbourhoods(x, p, q) @ _placed_kernel(kernel)).reshape(-1, 4, f)
  m, winner = pooling.window_winner(y)
  out = jnp.maximum(m + bias, 0)
  return out.reshape(b, p, q, f), (x, kernel, winner, out > 0)


def _neighbourhood_bwd(res, g):
  x, kernel, winner, positive = res
  b, h, w, c = x.shape
  p, q = _pooled_grid(x)
  f = kernel.shape[-1]
  g = jnp.where(positive, g.reshape(-1, f), 0)
  dy = pooling.route(g[:, None, :], winner[:, None, :], (1, 4, 1)).reshape(-1, 4 * f)
  d_kernel = _fold_placed_kernel(_neighbourhoods(x, p, q, transposed=True) @ dy, c, f)
  # The input gradient (unused when x is data, and then never computed): each neighbourhood's
  # gradient added back at stride 2.
  d_n = (dy @ _placed_kernel(kernel).T).reshape(b, p, q, 4, 4, c)
  dx = sum(lax.pad(d_n[:, :, :, u, v], jnp.zeros((), x.dtype),
                   ((0, 0, 0), (u, h - 2 * p + 1 - u, 1), (v, w - 2 * q + 1 - v, 1), (0, 0, 0)))
           for u in range(4) for v in range(4))
  return dx, d_kernel, g.sum(axis=0)


def _uses_neighbourhoods(channels: int) -> bool:
  return channels <= NEIGHBOURHOOD_MAX_CHANNELS


def training_slices(batch: int) -> list[slice]:
  """About SLICE_IMAGES images per slice, at most MAX_SLICES slices, covering range(batch)."""
  parts = max(1, min(MAX_SLICES, batch // SLICE_IMAGES))
  bounds = [batch * i // parts for i in range(parts + 1)]
  return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def _fwd(x, kernel, bias):
  _check(x, kernel)
  fwd = _neighbourhood_fwd if _uses_neighbourhoods(x.shape[-1]) else _patches_fwd
  outs, residuals = zip(*[fwd(x[part], kernel, bias) for part in training_slices(x.shape[0])])
  return jnp.concatenate(outs), residuals


def _bwd(residuals, g):
  bwd = _neighbourhood_bwd if _uses_neighbourhoods(residuals[0][0].shape[-1]) else _patches_bwd
  grads = [bwd(res, g[part]) for res, part in zip(residuals, training_slices(g.shape[0]))]
  dx, d_kernel, d_bias = zip(*grads)
  return jnp.concatenate(dx), sum(d_kernel), sum(d_bias)


conv_pool_relu.defvjp(_fwd, _bwd)
