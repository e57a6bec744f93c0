"""Models by name. Adding one: a linen module, registered here; `config.model` holds its fields."""

import flax.linen as nn
import ml_collections


from nn_jax.models.cnn import CNN, CONV_IMPLS  # noqa: F401  (CONV_IMPLS: for config checks)
from nn_jax.models.mlp import MLP
from nn_jax.models.rnn import SequenceRegressor

MODELS = {
    "mlp": MLP,
    "cnn": CNN,
    "sequence_regressor": SequenceRegressor,
}


def build(model_config: ml_collections.ConfigDict) -> nn.Module:
  kwargs = {k: v for k, v in model_config.items() if k != "name"}
  return MODELS[model_config.name](**kwargs)
