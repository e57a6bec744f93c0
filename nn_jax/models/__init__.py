"""Models by name or by file, and the contract every model keeps with the trainer.

`config.model.name` is a built-in model's name (MODELS) or a linen Module in
the researcher's own file, `path/to/file.py:ClassName`. Either way the model
is built by `build(config.model, compute_dtype)` from the fields of
`config.model` (all but `name`; the class's own defaults fill the rest) plus:

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

Optional, each read only here and in nn_jax/training/auto.py:

- `input_rank`: the rank of one example's input (3: images (height, width,
  channels); 2: sequences (steps, features)); a dataset of another rank is
  refused before anything loads.
- `check(fields, input_shape)`, a classmethod: raises UserError when a field
  is out of range or the inputs cannot pass through the model (too small).
- `backend_choices(fields, backend)`, a classmethod: {field: value} for the
  fields the config left to the backend ("auto"), decided once per run and
  recorded in summary.json, plus "microbatch_size" when the model prefers one
  and "steps_per_dispatch" when it runs slowly inside compiled loops.
- `run_axis_fields`: a class attribute naming the float fields that runs of
  one program may differ in, e.g. dropout rates. In training passes such a
  field holds the run's value as an array (the module is cloned with it), so
  the model computes with it rather than branching on it in Python
  (nn_jax/models/dropout.py). A field at 0 stays a constant, since it may
  remove an op. These fields change no parameter's shape; initialization
  takes them as arrays too (the MLP's initializer_scale).

Adding a model: a Module keeping this contract, in a file of your own (a config
of your own sets `config.model.name = "my_models.py:TinyCNN"` and its fields;
tests/user_files_test.py) or, to ship it, one line in MODELS.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from nn_jax.common import user_files
from nn_jax.common.errors import UserError, require
from nn_jax.models.cnn import CNN
from nn_jax.models.mlp import MLP
from nn_jax.models.rnn import SequenceRegressor

MODELS = {
    "mlp": MLP,
    "cnn": CNN,
    "sequence_regressor": SequenceRegressor,
}

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def model_class(name: str) -> type[nn.Module]:
  """The class `config.model.name` names: a built-in's name or `path/to/file.py:ClassName`."""
  return user_files.builtin_or_named(name, MODELS, "config.model.name",
                                     lambda found: isinstance(found, type) and issubclass(found, nn.Module),
                                     "a linen Module class")


def fields(model_config: ml_collections.ConfigDict) -> dict:
  """The model's fields a config sets; a list becomes a tuple: a module's fields are frozen, and the
  program caches its compiled initialization by the module's hash."""
  return {k: tuple(v) if isinstance(v, list) else v for k, v in model_config.items() if k != "name"}


def build(model_config: ml_collections.ConfigDict, compute_dtype: str = "float32") -> nn.Module:
  """The model `model_config` names, computing in `compute_dtype`."""
  return model_class(model_config.name)(**fields(model_config), dtype=COMPUTE_DTYPES[compute_dtype])


TRAINING_HINTS = ("microbatch_size", "steps_per_dispatch")  # what a model's backend_choices may say of its training


def backend_choices(model_config: ml_collections.ConfigDict, backend: str) -> tuple[dict, dict]:
  """The model's per-backend choices (the contract's `backend_choices`), split into ({field: value} of its
  own fields, {training hint: value}); ({}, {}) for a model without any."""
  decide = getattr(model_class(model_config.name), "backend_choices", None)
  decided = decide(fields(model_config), backend) if decide else {}
  return ({key: value for key, value in decided.items() if key not in TRAINING_HINTS},
          {key: value for key, value in decided.items() if key in TRAINING_HINTS})


def run_axis_fields(model_class) -> tuple[str, ...]:
  return getattr(model_class, "run_axis_fields", ())


def on_run_axis(model_name: str, field: str, value) -> bool:
  """Whether a model field's value rides on the run axis: one of the model's run_axis_fields, not 0."""
  return field in run_axis_fields(model_class(model_name)) and value != 0


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


RANKS = {3: "images (height, width, channels)", 2: "sequences (steps, features)", 1: "feature vectors"}


def check(model_config: ml_collections.ConfigDict, input_shape: tuple, outputs: int) -> None:
  """Raises UserError when the model's fields are out of range or it cannot read this dataset's inputs
  (`input_shape`, one example's) or give the `outputs` it needs: before anything is loaded or run."""
  name, cls = model_config.name, model_class(model_config.name)
  _positive(model_config, "hidden_units", "output_units", "num_classes", "units", "outputs")
  rank = getattr(cls, "input_rank", None)
  require(rank is None or len(input_shape) == rank,
          f"config.model.name {name!r} reads {RANKS.get(rank, f'inputs of rank {rank}')}, but this dataset's inputs "
          f"have shape {input_shape}; pick a model for this dataset")
  given_fields = fields(model_config)
  if hasattr(cls, "check"):
    cls.check(given_fields, tuple(input_shape))
  own = [field.name for field in dataclasses.fields(cls) if field.name not in ("parent", "name", "dtype")]
  unknown = sorted(set(given_fields) - set(own))
  require(not unknown, f"config.model.{unknown[0] if unknown else ''} is not a field of {cls.__name__}; "
                       f"its fields: {', '.join(own)}")
  given = model_config.get("output_units", model_config.get("num_classes", model_config.get("outputs")))
  require(given is None or given == outputs, f"the model gives {given} outputs but this dataset needs {outputs}; "
                                             f"set the model's output count to {outputs}")
