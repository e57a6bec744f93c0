"""Experiment configs: loaded from a file, overridden and checked (the keys every experiment shares, their
defaults and traits: nn_jax/training/hparams.py).

A config file is a Python file with `get_config(arg=None)` returning an
ml_collections.ConfigDict (Flax-examples style); `path.py:variant` passes
"variant" as `arg`. `load` is the one way in, for the CLI, sweeps, benchmarks
and tests alike:

- command-line `--config.KEY=VALUE` strings are parsed by ml_collections'
  own `config_flags` (absl), each typed by the default it replaces, exactly
  as in the Flax examples. The CLI has subcommands, so the file is loaded here
  (with one-line errors) and `config_flags.DEFINE_config_dict` parses only the
  overrides, on a FlagValues of their own;
- Python values (sweeps, benchmarks, tests) go through ConfigDict's typed
  `update_from_flattened_dict`, never through strings.
Either way an unknown key, a value of the wrong type or a value `validate`
refuses is a UserError: one line, before any work starts. Loading a config and
refusing an unknown key or a mistyped value import neither JAX nor Flax: the
checks that need the model, loss and optimizer registries import them.
"""

import difflib
import math
import os
import pathlib

import ml_collections
from absl import flags
from ml_collections import config_flags

from nn_jax import data
from nn_jax.common import metrics as metrics_lib
from nn_jax.common import user_files
from nn_jax.common.errors import UserError, require
from nn_jax.training.hparams import base_config, parse_profile_steps  # noqa: F401  (base_config: for experiments)


def _load_file(spec: str) -> ml_collections.ConfigDict:
  path, _, arg = spec.partition(":")
  module = user_files.execute(path, "config file", "--config experiments/house_mlp.py")
  if not hasattr(module, "get_config"):
    raise UserError(f"config file {path!r} defines no get_config()")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except (ValueError, TypeError) as e:  # e.g. an unknown variant after the colon
    raise UserError(f"config {spec}: {e}") from e
  except (Exception, SystemExit) as e:
    raise UserError(f"config {spec}: get_config() raised {type(e).__name__}: {e}; fix the file") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f"config {spec}: get_config() returned {type(config).__name__}, not an "
                    f"ml_collections.ConfigDict; build it from config.base_config() as experiments/*.py do")
  return config


def check_key(config: ml_collections.ConfigDict, key: str) -> None:
  """UserError unless dotted `key` names a value (not a group) of `config`."""
  node, parts = config, key.split(".")
  for depth, part in enumerate(parts):
    known = sorted(node.keys())
    if part not in known and depth == len(parts) - 1 and depth and parts[depth - 1] == "kwargs":
      return  # optax's keyword arguments: optim.validate checks them against the function's signature
    if part not in known:
      where = ".".join(parts[:depth]) or "the config"
      close = difflib.get_close_matches(part, known, n=1)
      hint = f"did you mean {close[0]!r}? " if close else ""
      raise UserError(f"unknown config key {key!r}: {where} has no {part!r} ({hint}known: {', '.join(known)})")
    node = node[part]
    if depth < len(parts) - 1 and not isinstance(node, ml_collections.ConfigDict):
      raise UserError(f"unknown config key {key!r}: {'.'.join(parts[:depth + 1])} is not a group")
  if isinstance(node, ml_collections.ConfigDict) and node.keys() and key.split(".")[-1] != "kwargs":
    raise UserError(f"--config.{key} is a group; set one of its keys: {', '.join(sorted(node.keys()))}")


def apply_flags(config: ml_collections.ConfigDict, arguments: list[str]) -> ml_collections.ConfigDict:
  """A copy of `config` with `--config.KEY=VALUE` arguments applied by ml_collections.config_flags."""
  for argument in arguments:
    key = argument[len("--config."):].partition("=")[0]
    if not key:
      raise UserError(f"malformed override {argument}: write --config.key=value")
    check_key(config, key)
  flag_values = flags.FlagValues()
  try:  # new keys are accepted only under a `kwargs` group: check_key has refused any other
    holder = config_flags.DEFINE_config_dict("config", config.copy_and_resolve_references(),
                                             flag_values=flag_values, sys_argv=["nn_jax", *arguments],
                                             lock_config=False, accept_new_attributes=True)
    flag_values(["nn_jax", *arguments])
  except (flags.Error, ValueError, TypeError, AttributeError, KeyError) as e:
    message = str(e).splitlines()[0]
    if len(message) > 1 and message[0] in "'\"" and message[-1] == message[0]:
      message = message[1:-1]
    raise UserError(f"{message} (each --config.KEY=VALUE must have the type of the key's default)") from e
  return holder.value


def override(config: ml_collections.ConfigDict, values: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with {dotted key: value} set by ConfigDict's typed assignment (lists become tuples)."""
  config = config.copy_and_resolve_references()
  for key, value in values.items():
    check_key(config, key)
    try:
      default = _value(config, key)
    except KeyError:  # a new optimizer or schedule keyword argument: optim.validate checks it
      default = None
    if default is not None and isinstance(value, bool) != isinstance(default, bool):
      raise UserError(f"config.{key}={value!r}: expected a value of type {type(default).__name__} (the default is "
                      f"{default!r}); True and False are not numbers here, nor numbers flags")
    try:
      config.update_from_flattened_dict({key: tuple(value) if isinstance(value, list) else value})
    except TypeError as e:
      raise UserError(f"config.{key}={value!r}: expected a value of type {type(default).__name__} "
                      f"(the default is {default!r})") from e
  return config


def _value(config, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def workdir(text, must_exist: bool = False) -> pathlib.Path:
  """The run directory a user named (on the command line or in the API), checked to be one that can be
  written (or, `must_exist`, read)."""
  if not isinstance(text, (str, os.PathLike)) or not str(text).strip():
    raise UserError(f"the workdir {text!r} is empty or not a path; give a directory, e.g. runs/my_run")
  path = pathlib.Path(text)
  if path.exists() and not path.is_dir():
    raise UserError(f"the workdir {text} is a file; give a directory (new or an earlier run's)")
  if must_exist:
    return path
  existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
  if not existing.is_dir():
    raise UserError(f"the workdir {text} lies under {existing}, which is a file; give a directory elsewhere")
  if not os.access(existing, os.W_OK | os.X_OK) or str(existing).startswith(("/proc", "/sys")):
    raise UserError(f"the workdir {text}: {existing} cannot be written to; give a directory you can write")
  return path


def load(spec: str, values: dict | None = None, arguments: list[str] = ()) -> ml_collections.ConfigDict:
  """Loads `path.py[:variant]`, applies command-line `arguments` then `values`, and validates."""
  config = _load_file(spec)
  if arguments:
    config = apply_flags(config, list(arguments))
  if values:
    config = override(config, values)
  validate(config)
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks values before any work starts; raises UserError naming the first problem."""
  require(isinstance(config.seed, int) and config.seed >= 0, f"config.seed must be an int >= 0, got {config.seed!r}")
  require(0 < config.num_epochs < 2**31,
          f"config.num_epochs must be positive and below 2**31 (the step counter is an int32), got "
          f"{config.num_epochs}")
  require(config.batch_size >= 0, f"config.batch_size must be >= 0 (0 = full batch), got {config.batch_size}")
  from nn_jax import models
  from nn_jax.training import optim, tasks  # the registries: JAX, Flax and optax load here
  optim.validate(config.optimizer, config.schedule)
  models.model_class(config.model.name)
  require(config.compute_dtype in models.COMPUTE_DTYPES,
          f"config.compute_dtype {config.compute_dtype!r} is not one of {', '.join(models.COMPUTE_DTYPES)}")
  data.spec(config.dataset.name)
  require(config.loss in tasks.TASKS, f"config.loss {config.loss!r} is not one of {', '.join(sorted(tasks.TASKS))}")
  _check_fit(config)
  require(config.log_every_epochs > 0, f"config.log_every_epochs must be positive, got {config.log_every_epochs}")
  require(config.checkpoint_every_epochs >= 0,
          f"config.checkpoint_every_epochs must be >= 0 (0 = only at the end), got {config.checkpoint_every_epochs}")
  require(config.checkpoint_every_steps >= 0,
          f"config.checkpoint_every_steps must be >= 0 (0 = off), got {config.checkpoint_every_steps}")
  require(config.keep_checkpoints >= 1, f"config.keep_checkpoints must be >= 1, got {config.keep_checkpoints}")
  require(config.eval_batch_size > 0, f"config.eval_batch_size must be positive, got {config.eval_batch_size}")
  require(config.data_on_device in ("auto", "true", "false"),
          f"config.data_on_device must be 'auto', 'true' or 'false', got {config.data_on_device!r}")
  require(config.steps_per_dispatch >= 0,
          f"config.steps_per_dispatch must be >= 0 (0 = chosen per backend), got {config.steps_per_dispatch}")
  require(config.checkpoint_min_interval_seconds >= 0,
          f"config.checkpoint_min_interval_seconds must be >= 0, got {config.checkpoint_min_interval_seconds}")
  parse_profile_steps(config.profile_steps)
  require(config.watchdog_seconds >= 0 or config.watchdog_seconds == -1,
          f"config.watchdog_seconds must be > 0 (a limit), 0 (auto) or -1 (off), got {config.watchdog_seconds}")
  require(config.watchdog_first_seconds > 0,
          f"config.watchdog_first_seconds must be positive, got {config.watchdog_first_seconds}")
  require(config.microbatch_size >= 0,
          f"config.microbatch_size must be >= 0 (0 = chosen per backend), got {config.microbatch_size}")
  require(not (config.batch_size and config.microbatch_size) or config.batch_size % config.microbatch_size == 0,
          f"config.microbatch_size {config.microbatch_size} does not divide config.batch_size {config.batch_size}; "
          f"use a divisor of it, or 0 to let the backend choose")


def _check_fit(config: ml_collections.ConfigDict) -> None:
  """Model, dataset, loss and the metrics a config names must fit one another."""
  from nn_jax import models
  from nn_jax.training import tasks
  spec, task = data.spec(config.dataset.name), tasks.TASKS[config.loss]
  fields = data.fields(config.dataset)
  spec.check(fields)
  require(task.kind == spec.kind, f"config.loss {config.loss!r} is for {task.kind} targets, but "
          f"{config.dataset.name} has {spec.kind} targets; use one of "
          f"{', '.join(name for name, t in tasks.TASKS.items() if t.kind == spec.kind)}")
  input_shape = tuple(spec.input_shape(fields))
  models.check(config.model, input_shape, spec.outputs)
  fraction = config.dataset.get("validation_fraction", 0.0)
  require(0 <= fraction < 1, f"config.dataset.validation_fraction must be in [0, 1), got {fraction}")
  splits = spec.splits + (("validation",) if fraction else ())
  metrics = [f"{split}/{name}" for split in splits for name in task.metric_names]
  for key in ("checkpoint_best_metric", "target_metric", "stop.metric"):
    value = config.stop.metric if key == "stop.metric" else config[key]
    require(not value or value in metrics,
            f"config.{key} {value!r} is not a metric this run records; use one of {', '.join(metrics)}"
            + ("" if fraction else " (a validation split: config.dataset.validation_fraction > 0)"))
  for key, metric, given in (("checkpoint_best_mode", config.checkpoint_best_metric, config.checkpoint_best_mode),
                             ("stop.mode", config.stop.metric, config.stop.mode)):
    require(given in ("auto", "max", "min"), f"config.{key} must be 'auto', 'max' or 'min', got {given!r}")
    if metric:
      try:
        metrics_lib.mode(metric, given)
      except UserError as e:
        raise UserError(f"config.{key}: {e}") from None
  require(config.stop.patience >= 0 and config.stop.min_delta >= 0,
          "config.stop.patience and config.stop.min_delta must be >= 0")
  require(not config.stop.at_target or config.target_metric,
          "config.stop.at_target needs config.target_metric (and target_value) to stop at")
  for example in config.predict_examples:
    require(isinstance(example, (list, tuple)) and all(
       isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in example),
            f"config.predict_examples: {example!r} must be a tuple of finite numbers, e.g. (110, 7)")
    require(len(input_shape) == 1 and len(example) == input_shape[0],
            f"config.predict_examples: {tuple(example)} must be {input_shape[0]} numbers, one per input feature"
            if len(input_shape) == 1 else
            f"config.predict_examples: {config.dataset.name}'s inputs have shape {input_shape}; predictions "
            f"from raw values take flat feature vectors only, so leave predict_examples empty")
