"""How an experiment config is loaded, overridden from the command line and checked.

A config file is a Python file with `get_config(arg=None)` returning an
ml_collections.ConfigDict (Flax-examples style). `path.py:variant` passes
"variant" as `arg`. Overrides are `--config.dotted.key=value`; a value is read
as a Python literal when it parses as one, else as a string, and must have the
type of the default it replaces.
"""

import ast
import importlib.util
import os

import ml_collections

from nn_jax import data, models, tasks
from nn_jax.errors import UserError

OPTIMIZERS = ("sgd", "adam")


def _choices() -> dict:
  """Allowed values of model fields that name an option, checked when a config has the field."""
  from nn_jax.models import activations, cnn, mlp, rnn
  return {"activation": tuple(activations.ACTIVATIONS), "initializer": tuple(mlp.INITIALIZERS),
          "cell": tuple(rnn.CELLS), "recurrence": rnn.RECURRENCES, "conv_impl": cnn.CONV_IMPLS}


def load_config(spec: str) -> ml_collections.ConfigDict:
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise UserError(f"config file {path!r} does not exist; pass e.g. --config experiments/house_mlp.py")
  module_spec = importlib.util.spec_from_file_location("nn_jax_experiment_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise UserError(f"config file {path!r} defines no get_config()")
  try:
    return module.get_config(arg) if arg else module.get_config()
  except (ValueError, TypeError) as e:  # e.g. an unknown variant after the colon
    raise UserError(f"config {spec}: {e}") from e


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if text.lower() in ("true", "false"):
      return text.lower() == "true"
    return text


def _coerce(key: str, old, new):
  """Returns `new` converted to the type of `old`, or raises UserError."""
  if isinstance(old, bool) or isinstance(new, bool):
    if isinstance(old, bool) and isinstance(new, bool):
      return new
  elif isinstance(old, float) and isinstance(new, (int, float)):
    return float(new)
  elif isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
    return type(old)(new)
  elif old is None or type(old) is type(new):
    return new
  raise UserError(f"--config.{key}={new!r}: expected a value of type {type(old).__name__} "
                  f"(the default is {old!r})")


def apply_override(config: ml_collections.ConfigDict, assignment: str) -> None:
  """Applies one 'dotted.key=value' override in place."""
  key, sep, text = assignment.partition("=")
  if not sep or not key:
    raise UserError(f"malformed override --config.{assignment}: write --config.key=value")
  node = config
  parts = key.split(".")
  for depth, part in enumerate(parts):
    known = sorted(node.keys())
    if part not in known:
      where = ".".join(parts[:depth]) or "the config"
      raise UserError(f"unknown config key {key!r}: {where} has no {part!r} (known: {', '.join(known)})")
    if depth < len(parts) - 1:
      node = node[part]
      if not isinstance(node, ml_collections.ConfigDict):
        raise UserError(f"unknown config key {key!r}: {'.'.join(parts[:depth + 1])} is not a group")
  old = node[parts[-1]]
  if isinstance(old, ml_collections.ConfigDict):
    raise UserError(f"--config.{key} is a group; set one of its keys: {', '.join(sorted(old.keys()))}")
  with node.unlocked():
    node[parts[-1]] = _coerce(key, old, _parse_value(text))


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise UserError(message)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks values before any work starts; raises UserError naming the first problem."""
  _require(isinstance(config.seed, int) and config.seed >= 0, f"config.seed must be an int >= 0, got {config.seed!r}")
  _require(config.num_epochs > 0, f"config.num_epochs must be positive, got {config.num_epochs}")
  _require(config.batch_size >= 0, f"config.batch_size must be >= 0 (0 = full batch), got {config.batch_size}")
  _require(config.optimizer.name in OPTIMIZERS,
           f"config.optimizer.name {config.optimizer.name!r} is not one of {', '.join(OPTIMIZERS)}")
  _require(config.optimizer.learning_rate > 0,
           f"config.optimizer.learning_rate must be positive, got {config.optimizer.learning_rate}")
  _require(config.model.name in models.MODELS,
           f"config.model.name {config.model.name!r} is not one of {', '.join(sorted(models.MODELS))}")
  _require(config.compute_dtype in models.COMPUTE_DTYPES,
           f"config.compute_dtype {config.compute_dtype!r} is not one of {', '.join(models.COMPUTE_DTYPES)}")
  for field, allowed in _choices().items():
    value = config.model.get(field)
    _require(value is None or value in allowed,
             f"config.model.{field} {value!r} is not one of {', '.join(allowed)}")
  _require(config.model.get("recurrence") not in models.rnn.LSTM_ONLY_RECURRENCES or config.model.get("cell") == "lstm",
           f"config.model.recurrence {config.model.get('recurrence')!r} is for the LSTM only, not "
           f"{config.model.get('cell')!r}; use scan")
  _require(config.dataset.name in data.DATASETS,
           f"config.dataset.name {config.dataset.name!r} is not one of {', '.join(sorted(data.DATASETS))}")
  _require(config.loss in tasks.TASKS, f"config.loss {config.loss!r} is not one of {', '.join(sorted(tasks.TASKS))}")
  _require(config.log_every_epochs > 0, f"config.log_every_epochs must be positive, got {config.log_every_epochs}")
  _require(config.checkpoint_every_epochs >= 0,
           f"config.checkpoint_every_epochs must be >= 0 (0 = only at the end), got {config.checkpoint_every_epochs}")
  _require(config.checkpoint_every_steps >= 0,
           f"config.checkpoint_every_steps must be >= 0 (0 = off), got {config.checkpoint_every_steps}")
  _require(config.checkpoint_best_mode in ("max", "min"),
           f"config.checkpoint_best_mode must be 'max' or 'min', got {config.checkpoint_best_mode!r}")
  _require(config.keep_checkpoints >= 1, f"config.keep_checkpoints must be >= 1, got {config.keep_checkpoints}")
  _require(config.eval_batch_size > 0, f"config.eval_batch_size must be positive, got {config.eval_batch_size}")
  _require(config.microbatch_size >= 0,
           f"config.microbatch_size must be >= 0 (0 = the model's choice), got {config.microbatch_size}")
  _require(not (config.batch_size and config.microbatch_size) or config.batch_size % config.microbatch_size == 0,
           f"config.microbatch_size {config.microbatch_size} does not divide config.batch_size {config.batch_size}; "
           f"use a divisor of it, or 0 for the model's choice")


def base_config() -> ml_collections.ConfigDict:
  """The keys every experiment has; an experiment file sets what differs."""
  config = ml_collections.ConfigDict()
  config.name = ""
  config.seed = 0
  config.model = ml_collections.ConfigDict({"name": ""})
  config.dataset = ml_collections.ConfigDict({"name": ""})
  config.loss = ""
  config.optimizer = ml_collections.ConfigDict({"name": "adam", "learning_rate": 1e-3})
  config.num_epochs = 1
  config.compute_dtype = "float32"  # or "bfloat16": parameters stay float32
  config.batch_size = 0  # 0: full batch
  config.eval_batch_size = 1000
  # > 0: each step accumulates the batch's gradient over microbatches of this many examples, one after
  # another (same gradient, smaller working set); 0: the model's choice (the fused CNN on CPU: about 50).
  config.microbatch_size = 0
  config.log_every_epochs = 1  # also how many full-batch epochs one compiled scan runs
  config.checkpoint_every_epochs = 1  # 0: only at the end
  config.checkpoint_every_steps = 0  # > 0: also every N steps within an epoch (mini-batch training)
  config.keep_checkpoints = 3  # the latest N, plus the best by checkpoint_best_metric
  config.checkpoint_best_metric = ""  # e.g. "test/accuracy"; "": keep only the latest
  config.checkpoint_best_mode = "max"  # or "min"
  config.allow_config_change = False  # resume a workdir whose run had another config
  # Multi-host: JAX's multi-controller runtime (README "Running on accelerators and clusters").
  config.distributed = ml_collections.ConfigDict({
      "auto": False,  # True: jax.distributed.initialize() detects the cluster (SLURM, Cloud TPU)
      "coordinator_address": "",  # or give "host:port", the process count and this process's id
      "num_processes": 1,
      "process_id": 0,
  })
  config.progress = True  # a progress bar per epoch, when stderr is a terminal
  config.predict_examples = ()  # raw inputs whose predictions are printed after training
  # The run reports the wall time from launch until this evaluated metric first reaches the value.
  config.target_metric = ""  # e.g. "test/accuracy"; "": none
  config.target_value = 0.0
  return config
