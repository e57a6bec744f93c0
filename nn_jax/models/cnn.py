"""The article's MNIST CNN, with two interchangeable implementations of its convolutions and pools.

`conv_impl="xla"` uses nn.Conv and nn.max_pool. `conv_impl="patches"` computes
the same functions as patch extraction + one matmul, and pooling as a reshape +
max, which XLA:CPU runs much faster (its generic convolution and pooling
gradients are the bottleneck there; see nn_jax/bench.py). Both create the same
parameter tree with the same initial values, so checkpoints are
interchangeable. `auto` picks `patches` on CPU and XLA's own ops elsewhere.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

CONV_IMPLS = ("auto", "xla", "patches")


def resolve_conv_impl(impl: str) -> str:
  if impl == "auto":
    return "patches" if jax.default_backend() == "cpu" else "xla"
  return impl


class PatchConv(nn.Module):
  """A stride-1, valid-padding convolution as patches @ kernel; nn.Conv's parameters and initializers."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    channels = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (kh, kw, channels, self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    # (B, out_h, out_w, kh*kw*C), ordered (i, j, c) to match kernel.reshape(kh*kw*C, F).
    patches = jnp.concatenate([x[:, i:i + out_h, j:j + out_w, :] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ kernel.reshape(kh * kw * channels, self.features) + bias


def max_pool_2x2(x):
  """2x2 max-pool, stride 2, valid padding, as a reshape and a max: odd edges are dropped as VALID does."""
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2, :]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class CNN(nn.Module):
  """Conv 32 3x3 relu, max-pool 2, Conv 64 3x3 relu, max-pool 2, flatten, Dense 128 relu, Dense 10.

  Convolutions use valid padding (Keras' default, as in the article), so the
  feature maps go 28 -> 26 -> 13 -> 11 -> 5 and the flattened size is 1600.
  Returns logits; the softmax is folded into the cross-entropy.
  """
  num_classes: int = 10
  conv_impl: str = "auto"
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32

  @nn.compact
  def __call__(self, x):
    if resolve_conv_impl(self.conv_impl) == "xla":
      conv = lambda features, name: nn.Conv(features, (3, 3), padding="VALID", dtype=self.dtype, name=name)
      pool = lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))
    else:
      conv = lambda features, name: PatchConv(features, (3, 3), dtype=self.dtype, name=name)
      pool = max_pool_2x2
    x = pool(nn.relu(conv(32, "conv_0")(x)))
    x = pool(nn.relu(conv(64, "conv_1")(x)))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(128, dtype=self.dtype, name="dense_0")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x).astype(jnp.float32)
