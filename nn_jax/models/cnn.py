"""The article's MNIST CNN, with two interchangeable implementations of its conv + pool blocks.

`conv_impl="xla"` is the plain formulation: nn.Conv, relu, nn.max_pool.
`conv_impl="fused"` computes the same function with `conv_pool.conv_pool_relu`,
whose training pass is written for XLA:CPU (see that module and docs/performance.md).
Both create the same parameter tree with the same initial values, so
checkpoints are interchangeable. `auto` picks `fused` on CPU and XLA's own ops
elsewhere (GPU/TPU convolutions and their gradients are fast as they are);
nn_jax/training/auto.py resolves it once per run and the run's summary records it.

`batch_norm` and the two dropout rates give the Keras MNIST example's
regularized variant (experiments/cnn_mnist.py:bn_dropout): BatchNorm between
each convolution and its relu, dropout after the second pool and after Dense 128.
BatchNorm sits inside the conv + pool block, so that variant always uses XLA's ops.

`pool` is how XLA's blocks pool: "reduce_window" (nn.max_pool, differentiated by XLA's
select_and_scatter, a scatter-add that a GPU serializes under deterministic ops) or "first_max"
(nn_jax/models/pooling.py: the same numbers, its gradient a select, deterministic by construction).
"auto" is reduce_window until a GPU measurement says otherwise (`make device-check`, stage cnn_first_max).
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nn_jax.common.errors import require
from nn_jax.models import conv_pool, pooling
from nn_jax.models.dropout import Dropout

CONV_IMPLS = ("auto", "xla", "fused")
POOLS = ("auto", "reduce_window", "first_max")
# The fused CNN step on the 2-core CPU at batch 200 (docs/performance.md): whole batch 39 ms, microbatches
# of 100, 50 and 25: 24-26, 26-30 and 26-27 ms; 50 compiles faster and uses less memory than 100.
FUSED_MICROBATCH = 50


def resolve_conv_impl(impl: str, batch_norm: bool = False, backend: str | None = None) -> str:
  """What `impl` computes with on `backend` (default: JAX's): `fused` only where it applies."""
  if batch_norm:
    return "xla"
  if impl == "auto":
    return "fused" if (backend or jax.default_backend()) == "cpu" else "xla"
  return impl


def resolve_pool(pool: str) -> str:
  return "reduce_window" if pool == "auto" else pool


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
    return conv_pool.conv_pool_relu(*(a.astype(self.dtype) for a in (x, kernel, bias)))


class CNN(nn.Module):
  """Conv 32 3x3 relu, max-pool 2, Conv 64 3x3 relu, max-pool 2, flatten, Dense 128 relu, Dense 10.

  Convolutions use valid padding (Keras' default, as in the article), so the
  feature maps go 28 -> 26 -> 13 -> 11 -> 5 and the flattened size is 1600.
  Returns logits; the softmax is folded into the cross-entropy.
  """
  num_classes: int = 10
  conv_impl: str = "auto"
  pool: str = "auto"  # one of POOLS: how XLA's blocks pool (the fused block routes its gradient itself)
  batch_norm: bool = False  # BatchNorm after each convolution (Keras' momentum 0.99, epsilon 1e-3)
  conv_dropout: float = 0.0  # dropout rate after the second pool
  dense_dropout: float = 0.0  # dropout rate after Dense 128
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32
  rng_streams: ClassVar[tuple[str, ...]] = ("dropout",)
  run_axis_fields: ClassVar[tuple[str, ...]] = ("conv_dropout", "dense_dropout")
  input_rank: ClassVar[int] = 3

  @classmethod
  def check(cls, fields: dict, input_shape: tuple) -> None:
    for key, allowed in (("conv_impl", CONV_IMPLS), ("pool", POOLS)):
      require(fields.get(key, getattr(cls, key)) in allowed,
              f"config.model.{key} {fields.get(key)!r} is not one of {', '.join(allowed)}")
    for key in ("conv_dropout", "dense_dropout"):
      require(0 <= fields.get(key, 0.0) < 1, f"config.model.{key} must lie in [0, 1), got {fields.get(key)}")
    require(min(input_shape[:2]) >= 10, f"the CNN's two valid 3x3 convolutions and 2x2 pools need images of at "
                                        f"least 10x10, got {input_shape}")

  @classmethod
  def backend_choices(cls, fields: dict, backend: str) -> dict:
    """The blocks' implementation; the fused one's microbatch; on CPU, XLA's convolution runs ~15x slower
    inside a compiled loop than alone (docs/performance.md), so one step per dispatch."""
    impl = resolve_conv_impl(fields.get("conv_impl", cls.conv_impl), fields.get("batch_norm", cls.batch_norm), backend)
    return {"conv_impl": impl, "pool": resolve_pool(fields.get("pool", cls.pool)),
            **({"microbatch_size": FUSED_MICROBATCH} if impl == "fused" else {}),
            **({"steps_per_dispatch": 1} if backend == "cpu" and impl == "xla" else {})}

  @nn.compact
  def __call__(self, x, train: bool = False):
    impl = resolve_conv_impl(self.conv_impl, self.batch_norm)
    for i, features in enumerate((32, 64)):
      if impl == "fused" and conv_pool.supports(x.shape, (3, 3, x.shape[-1], features)):
        x = ConvPoolRelu(features, dtype=self.dtype, name=f"conv_{i}")(x)
        continue
      x = nn.Conv(features, (3, 3), padding="VALID", use_bias=not self.batch_norm, dtype=self.dtype,
                  name=f"conv_{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, dtype=self.dtype,
                         name=f"batch_norm_{i}")(x)
      x = nn.relu(x)
      x = pooling.max_pool_2x2(x) if resolve_pool(self.pool) == "first_max" else nn.max_pool(x, (2, 2), strides=(2, 2))
    x = Dropout(self.conv_dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(128, dtype=self.dtype, name="dense_0")(x.reshape((x.shape[0], -1))))
    x = Dropout(self.dense_dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x).astype(jnp.float32)
