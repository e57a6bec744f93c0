"""Models by name, and the contract every model keeps with the trainer.

A model is a linen Module built by `build(config.model, compute_dtype)` from
the fields of `config.model` (all but `name`) plus:

- `dtype`: the dtype its computation runs in; parameters stay float32 and the
  output is float32 (bfloat16 keeps float32's exponent range: no loss scaling).
- `__call__(self, inputs, train: bool = False)`: `train=True` in training
  passes only. Dropout and the like act only then; BatchNorm normalizes with
  the batch's statistics then and with its running averages otherwise.
- `rng_streams`: a class attribute naming the RNG streams a training pass
  draws from, e.g. ("dropout",). The trainer gives each a fresh key per step
  (and per microbatch), derived from the run's seed and the step number, so a
  resumed run draws exactly the keys an uninterrupted one does.
- Mutable collections: whatever `model.init` returns besides "params" (e.g.
  "batch_stats") is model state. Training passes update it (`mutable=`),
  evaluation and prediction read it; the train state and every checkpoint
  carry it.

Adding a model: a Module keeping this contract, one line in MODELS, a config
in experiments/.
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from nn_jax.models import rnn  # noqa: F401  (rnn.LSTM_ONLY_RECURRENCES: for config checks)
from nn_jax.models.cnn import CNN
from nn_jax.models.mlp import MLP
from nn_jax.models.rnn import SequenceRegressor

MODELS = {
    "mlp": MLP,
    "cnn": CNN,
    "sequence_regressor": SequenceRegressor,
}

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build(model_config: ml_collections.ConfigDict, compute_dtype: str = "float32") -> nn.Module:
  """The model `model_config` names, computing in `compute_dtype`."""
  kwargs = {k: v for k, v in model_config.items() if k != "name"}
  return MODELS[model_config.name](**kwargs, dtype=COMPUTE_DTYPES[compute_dtype])
