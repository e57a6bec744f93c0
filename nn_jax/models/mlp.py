"""Multi-layer perceptrons: the article's house-price net and the feed-forward classifier."""

from typing import ClassVar, Sequence

import flax.linen as nn
import jax.numpy as jnp

from nn_jax.common.errors import require
from nn_jax.models.activations import ACTIVATIONS

# "article": weights standard normal, biases ones, as the article initializes them;
# "lecun": Flax's default (LeCun-normal weights, zero biases).
INITIALIZERS = {
    "article": (nn.initializers.normal(stddev=1.0), nn.initializers.ones),
    "lecun": (nn.initializers.lecun_normal(), nn.initializers.zeros),
}


class MLP(nn.Module):
  """Dense layers of `hidden_units` with `activation`, then a linear Dense(`output_units`).

  The output is linear: a regression value, or a logit whose sigmoid/softmax
  is folded into the loss for numerical stability. `initializer_scale` multiplies
  the initial weights (not the biases): a search may vary it, on the run axis.
  """
  hidden_units: Sequence[int]
  output_units: int = 1
  activation: str = "relu"
  initializer: str = "lecun"
  initializer_scale: float = 1.0
  dtype: jnp.dtype = jnp.float32  # computation; parameters stay float32
  rng_streams: ClassVar[tuple[str, ...]] = ()
  run_axis_fields: ClassVar[tuple[str, ...]] = ("initializer_scale",)

  @classmethod
  def check(cls, fields: dict, input_shape: tuple) -> None:
    for key, allowed in (("activation", tuple(ACTIVATIONS)), ("initializer", tuple(INITIALIZERS))):
      require(fields.get(key, getattr(cls, key)) in allowed,
              f"config.model.{key} {fields.get(key)!r} is not one of {', '.join(allowed)}")

  @nn.compact
  def __call__(self, x, train: bool = False):
    base_init, bias_init = INITIALIZERS[self.initializer]
    kernel_init = lambda key, shape, dtype=jnp.float32: self.initializer_scale * base_init(key, shape, dtype)
    dense = lambda units, name: nn.Dense(units, kernel_init=kernel_init, bias_init=bias_init, dtype=self.dtype,
                                         name=name)
    x = x.reshape((x.shape[0], -1))
    for i, units in enumerate(self.hidden_units):
      x = ACTIVATIONS[self.activation](dense(units, f"hidden_{i}")(x))
    return dense(self.output_units, "output")(x).astype(jnp.float32)
