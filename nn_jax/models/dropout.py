"""Dropout whose rate may be an array: a run-axis hyperparameter (nn_jax/models/__init__.py).

Runs of one program may differ in a model's dropout rates, so in training the
rate arrives as a traced value, which `nn.Dropout` cannot take (it branches on
the rate in Python). This module draws the same mask from the same RNG stream
and scope name ("Dropout_0", ...) and scales the same way, so in a compiled
program it gives nn.Dropout's outputs bit for bit, with a constant rate or an
array. One exception: an array rate's keep probability is computed in float32
(nn.Dropout's in float64, then rounded), so for some rates (0.1, 0.6, ...)
it differs in the last bit, and so may the outputs.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class Dropout(nn.Module):
  """nn.Dropout's fields and behaviour, for a Python rate or an array rate."""
  rate: float | jax.Array
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None):
    if nn.merge_param("deterministic", self.deterministic, deterministic):
      return inputs
    if isinstance(self.rate, (int, float)) and self.rate in (0.0, 1.0):  # as nn.Dropout: no op, or zeros
      return inputs if self.rate == 0.0 else jnp.zeros_like(inputs)
    keep_prob = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng(self.rng_collection), p=keep_prob, shape=inputs.shape)
    # XLA compiles nn.Dropout's division by a constant to a product with its reciprocal: an array rate
    # takes the same product, so both compile to the same arithmetic.
    scaled = inputs / keep_prob if isinstance(keep_prob, float) else inputs * (1 / keep_prob).astype(inputs.dtype)
    return jax.lax.select(mask, scaled, jnp.zeros_like(inputs))
