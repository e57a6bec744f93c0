"""The article's MNIST CNN, with two interchangeable implementations of its conv + pool blocks.

`conv_impl="xla"` is the plain formulation: nn.Conv, relu, nn.max_pool.
`conv_impl="fused"` computes the same function with `conv_pool.conv_pool_relu`,
whose training pass is written for XLA:CPU (see that module and nn_jax/bench.py).
Both create the same parameter tree with the same initial values, so
checkpoints are interchangeable. `auto` picks `fused` on CPU and XLA's own ops
elsewhere (GPU/TPU convolutions and their gradients are fast as they are).
The fused path also asks the trainer to accumulate each batch's gradient over
microbatches (`training_microbatch_size`); the gradient stays the batch's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.models.conv_pool import conv_pool_relu

CONV_IMPLS = ("auto", "xla", "fused")
# The trainer accumulates the fused path's gradient over microbatches of about this many examples
# (config.microbatch_size 0): one microbatch's activations stay in cache, where the whole batch of
# 200 would not. Training step at batch 200 on the 2-core CPU (a clean clone's `make bench`, then
# twice `python -m nn_jax.bench --only cnn_train cnn_train_microbatch_100 cnn_train_microbatch_25`):
# the whole batch 39 ms; microbatches of 100, 50 and 25: 24-26, 26-30 and 26-27 ms, within this
# machine's noise of each other; 50 compiles faster and uses less memory than 100. XLA's own ops
# gain nothing from microbatches (make bench: 141 ms whole, 540 ms in microbatches of 50), so `xla`
# trains on the whole batch.
FUSED_TRAINING_MICROBATCH = 50


def resolve_conv_impl(impl: str) -> str:
  if impl == "auto":
    return "fused" if jax.default_backend() == "cpu" else "xla"
  return impl


class ConvPoolRelu(nn.Module):
  """2x2 max-pool of relu(3x3 valid conv + bias), with nn.Conv's parameters and initializers."""
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    return conv_pool_relu(*(a.astype(self.dtype) for a in (x, kernel, bias)))


class CNN(nn.Module):
  """Conv 32 3x3 relu, max-pool 2, Conv 64 3x3 relu, max-pool 2, flatten, Dense 128 relu, Dense 10.

  Convolutions use valid padding (Keras' default, as in the article), so the
  feature maps go 28 -> 26 -> 13 -> 11 -> 5 and the flattened size is 1600.
  Returns logits; the softmax is folded into the cross-entropy.
  """
  num_classes: int = 10
  conv_impl: str = "auto"
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32

  def training_microbatch_size(self) -> int:
    """The trainer's microbatch when config.microbatch_size is 0; 0: the whole batch."""
    return FUSED_TRAINING_MICROBATCH if resolve_conv_impl(self.conv_impl) == "fused" else 0

  @nn.compact
  def __call__(self, x):
    plain = resolve_conv_impl(self.conv_impl) == "xla"
    for i, features in enumerate((32, 64)):
      if plain:
        x = nn.Conv(features, (3, 3), padding="VALID", dtype=self.dtype, name=f"conv_{i}")(x)
        x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
      else:
        x = ConvPoolRelu(features, dtype=self.dtype, name=f"conv_{i}")(x)
    x = nn.relu(nn.Dense(128, dtype=self.dtype, name="dense_0")(x.reshape((x.shape[0], -1))))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x).astype(jnp.float32)
