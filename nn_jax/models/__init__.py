"""Models by name. Adding one: a linen module, registered here; `config.model` holds its fields.

A model may also define `training_microbatch_size()`: how many examples the trainer
accumulates a gradient over at a time when `config.microbatch_size` is 0 (nn_jax/train.py).
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections


from nn_jax.models.cnn import CNN, CONV_IMPLS  # noqa: F401  (CONV_IMPLS: for config checks)
from nn_jax.models.mlp import MLP
from nn_jax.models.rnn import SequenceRegressor

MODELS = {
    "mlp": MLP,
    "cnn": CNN,
    "sequence_regressor": SequenceRegressor,
}


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build(model_config: ml_collections.ConfigDict, compute_dtype: str = "float32") -> nn.Module:
  """The model `model_config` names; `compute_dtype` is its computation's, its parameters stay float32.

  bfloat16 has float32's exponent range, so it needs no loss scaling (float16 would).
  """
  kwargs = {k: v for k, v in model_config.items() if k != "name"}
  return MODELS[model_config.name](**kwargs, dtype=COMPUTE_DTYPES[compute_dtype])
