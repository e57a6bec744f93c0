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
- `run_axis_fields` (optional): a class attribute naming the float fields
  that runs of one program may differ in, e.g. dropout rates. In training passes such a
  field holds the run's value as an array (the module is cloned with it), so
  the model computes with it rather than branching on it in Python
  (nn_jax/models/dropout.py). A field at 0 stays a constant, since it may
  remove an op. These fields change neither the parameters nor their
  initialization.
- Mutable collections: whatever `model.init` returns besides "params" (e.g.
  "batch_stats") is model state. Training passes update it (`mutable=`),
  evaluation and prediction read it; the train state and every checkpoint
  carry it.

Adding a model: a Module keeping this contract, one line in MODELS (and, for
config checks before anything runs, one in `check`), a config in experiments/.
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from nn_jax.errors import UserError

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
  """The model `model_config` names, computing in `compute_dtype`. A list becomes a tuple: a module's
  fields are frozen, and the program caches its compiled initialization by the module's hash."""
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in model_config.items() if k != "name"}
  return MODELS[model_config.name](**kwargs, dtype=COMPUTE_DTYPES[compute_dtype])


def run_axis_fields(model_class) -> tuple[str, ...]:
  return getattr(model_class, "run_axis_fields", ())


def on_run_axis(model_name: str, field: str, value) -> bool:
  """Whether a model field's value rides on the run axis: one of the model's run_axis_fields, not 0."""
  return field in run_axis_fields(MODELS.get(model_name)) and value != 0


def run_axis_values(model_config: ml_collections.ConfigDict) -> dict:
  """{field: value} of one run's model fields that ride on the run axis."""
  return {field: float(value) for field, value in model_config.items()
          if on_run_axis(model_config.name, field, value)}


def _positive(model_config, *keys) -> None:
  for key in keys:
    values = model_config.get(key)
    for value in (values if isinstance(values, (tuple, list)) else (values,)):
      if value is not None and not value > 0:
        raise UserError(f"config.model.{key} must be positive, got {values}")


def check(model_config: ml_collections.ConfigDict, input_shape: tuple, outputs: int) -> None:
  """Raises UserError when the model's fields are out of range or it cannot read this dataset's inputs
  (`input_shape`, one example's) or give the `outputs` it needs: before anything is loaded or run."""
  name = model_config.name
  _positive(model_config, "hidden_units", "output_units", "num_classes", "units", "outputs")
  for key in ("conv_dropout", "dense_dropout"):
    if not 0 <= model_config.get(key, 0.0) < 1:
      raise UserError(f"config.model.{key} must lie in [0, 1), got {model_config.get(key)}")
  wanted_rank = {"cnn": 3, "sequence_regressor": 2}.get(name)
  if wanted_rank and len(input_shape) != wanted_rank:
    reads = {3: "images (height, width, channels)", 2: "sequences (steps, features)"}[wanted_rank]
    raise UserError(f"config.model.name {name!r} reads {reads}, but this dataset's inputs have shape {input_shape}; "
                    f"pick a model for this dataset")
  if name == "cnn" and min(input_shape[:2]) < 10:
    raise UserError(f"the CNN's two valid 3x3 convolutions and 2x2 pools need images of at least 10x10, "
                    f"got {input_shape}")
  given = model_config.get("output_units", model_config.get("num_classes", model_config.get("outputs")))
  if given is not None and given != outputs:
    raise UserError(f"the model gives {given} outputs but this dataset needs {outputs}; set the model's "
                    f"output count to {outputs}")
