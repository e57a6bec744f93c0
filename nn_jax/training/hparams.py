"""The keys every experiment has: each key's default and what it means, declared once, side by side.

A key's traits say how the rest of the library treats it:

- RESUMABLE: how long, how verbosely, where or how fast to run, not what: a
  resumed run may change it (where the data lives gives the same numbers, K
  steps per dispatch the same to float rounding: tested).
- RUN_AXIS: runs trained as one program may differ in it; its value becomes
  an array of the train state (a number that changes neither a shape nor the
  program). The optimizer's and the schedule's float kwargs ride on the axis
  when the optimizer state computes with them (nn_jax/training/optim.py), a
  model's fields when the model declares them `run_axis_fields`
  (nn_jax/models/__init__.py).
- REPLICATE: differs between the runs of one grid point, so reports group
  over it rather than by it.

A key below a declared key (`stop.patience` below `stop`) has its traits.
Importing this module imports neither JAX nor Flax.
"""

import enum
import json

import ml_collections

from nn_jax.common.errors import UserError


class Trait(enum.Flag):
  NONE = 0
  RESUMABLE = enum.auto()
  RUN_AXIS = enum.auto()
  REPLICATE = enum.auto()


R, AXIS, REP = Trait.RESUMABLE, Trait.RUN_AXIS, Trait.REPLICATE
_dict = ml_collections.ConfigDict

# key: (default, traits)
KEYS = {
    "name": ("", REP),
    "seed": (0, AXIS | REP),
    "model.name": ("", Trait.NONE),  # the model's own fields beside it (nn_jax/models/__init__.py)
    # validation_fraction > 0 carves a validation split from the training data (by validation_seed; a time
    # series' last part), evaluated like the test split, so early stopping need not look at the test set.
    "dataset.name": ("", Trait.NONE),
    "dataset.validation_fraction": (0.0, Trait.NONE),
    "dataset.validation_seed": (0, Trait.NONE),
    "loss": ("", Trait.NONE),
    # Any optax optimizer and schedule by name (nn_jax/training/optim.py); the schedule multiplies the
    # learning rate.
    "optimizer.name": ("adam", Trait.NONE),
    "optimizer.learning_rate": (1e-3, AXIS),
    "optimizer.kwargs": (_dict(), AXIS),  # its floats
    "schedule.name": ("", Trait.NONE),
    "schedule.kwargs": (_dict(), AXIS),  # the floats the schedule computes with as arrays
    "num_epochs": (1, R),
    "compute_dtype": ("float32", Trait.NONE),  # or "bfloat16": parameters stay float32
    "batch_size": (0, Trait.NONE),  # 0: full batch
    "eval_batch_size": (1000, Trait.NONE),
    # > 0: each step accumulates the batch's gradient over microbatches of this many examples, one after
    # another (same gradient, smaller working set); 0: chosen per backend (nn_jax/training/auto.py).
    "microbatch_size": (0, Trait.NONE),
    # Where batches come from: "true" uploads the training split once and gathers batches on the device,
    # "false" gathers them on the host; "auto": on the device when it fits (nn_jax/training/auto.py).
    "data_on_device": ("auto", R),
    "steps_per_dispatch": (0, R),  # train steps per compiled call (a lax.scan); 0: chosen per backend
    # JAX's persistent compilation cache (nn_jax/training/compilation_cache.py): "" for the default folder,
    # a folder, or "off".
    "compilation_cache": ("", R),
    # On GPU, XLA's deterministic ops, so two runs end bit-identical (cost: docs/performance.md).
    "deterministic": (True, R),
    "log_every_epochs": (1, R),  # evaluate and print every N epochs (and at the last)
    "checkpoint_every_epochs": (1, R),  # 0: only at the end
    "checkpoint_every_steps": (0, R),  # > 0: also every N steps within an epoch (mini-batch training)
    # Epoch and step checkpoints come at most this often (the last one and a stop's always come).
    "checkpoint_min_interval_seconds": (10.0, R),
    "checkpoint_async": (True, R),  # orbax writes while training goes on
    "keep_checkpoints": (3, R),  # the latest N, plus the best by checkpoint_best_metric
    "checkpoint_best_metric": ("", Trait.NONE),  # e.g. "test/accuracy"; "": keep only the latest
    "checkpoint_best_mode": ("auto", R),  # the metric's declared direction (nn_jax/common/metrics.py)
    "allow_config_change": (False, R),  # resume a workdir whose run had another config
    # Multi-host: JAX's multi-controller runtime (README "Running on accelerators and clusters").
    "distributed": (_dict({
        "auto": False,  # True: jax.distributed.initialize() detects the cluster (SLURM, Cloud TPU)
        "coordinator_address": "",  # or give "host:port", the process count and this process's id
        "num_processes": 1,
        "process_id": 0,
    }), R),
    # A train dispatch, wait, evaluation or save that runs longer ends the process with exit code 75, saying
    # which process, step and phase hung (nn_jax/training/watchdog.py): seconds; 0: ten times that phase's
    # median plus a minute; -1: off. Each phase's first occurrence (compilation, first save) gets
    # watchdog_first_seconds.
    "watchdog_seconds": (0.0, R),
    "watchdog_first_seconds": (600.0, R),
    "progress": (True, R | REP),  # a progress bar per epoch, when stderr is a terminal
    # Learning curves and pictures drawn at the end (nn_jax/workdir/pictures.py); a sweep draws them when
    # its file asks.
    "pictures": (True, R),
    # "START:COUNT": a jax.profiler trace of those steps' dispatches into WORKDIR/profile (TensorBoard, Perfetto)
    "profile_steps": ("", R),
    "predict_examples": ((), R),  # raw inputs whose predictions are printed after training
    # The run reports the wall time from launch until this evaluated metric first reaches the value.
    "target_metric": ("", R),  # e.g. "test/accuracy"; "": none
    "target_value": (0.0, R),
    # Stopping before num_epochs (nn_jax/training/stopping.py): on a metric that stops improving, or at the target.
    "stop": (_dict({
        "metric": "",  # e.g. "validation/loss"; "": no early stopping
        "mode": "auto",  # the metric's declared direction (nn_jax/common/metrics.py)
        "patience": 0,  # evaluations without improvement before stopping; 0: never
        "min_delta": 0.0,  # what counts as an improvement
        "at_target": False,  # stop once target_metric reaches target_value
    }), R),
}


def base_config() -> ml_collections.ConfigDict:
  """The keys every experiment has, at their defaults; an experiment file sets what differs."""
  tree = {}
  for key, (default, _) in KEYS.items():
    *parents, name = key.split(".")
    node = tree
    for parent in parents:
      node = node.setdefault(parent, {})
    node[name] = default.to_dict() if isinstance(default, _dict) else default
  return ml_collections.ConfigDict(tree)


def traits(key: str) -> Trait:
  """The traits of a flattened key: its own, else its nearest declared parent's; none for others."""
  parts = key.split(".")
  for end in range(len(parts), 0, -1):
    declared = KEYS.get(".".join(parts[:end]))
    if declared is not None:
      return declared[1]
  return Trait.NONE


def on_run_axis(key: str, value, config: ml_collections.ConfigDict) -> bool:
  """Whether a flattened key of `config` holds a value that may differ between the runs of one program."""
  if key.startswith("model."):
    from nn_jax import models
    return models.on_run_axis(config.model.name, key.removeprefix("model."), value)
  if Trait.RUN_AXIS not in traits(key):
    return False
  if key.startswith("optimizer.kwargs."):
    from nn_jax.training import optim
    return optim.on_run_axis(value)  # floats; other kwargs (counts, flags) shape the program
  if key.startswith("schedule.kwargs."):
    from nn_jax.training import optim
    return optim.schedule_kwarg_on_run_axis(config.schedule, key.removeprefix("schedule.kwargs."), value)
  return True


def run_axis_keys() -> list[str]:
  """The keys that may ride on the run axis, as a message names them."""
  return [key + (".*" if isinstance(default, _dict) else "") for key, (default, trait) in KEYS.items()
          if Trait.RUN_AXIS in trait] + ["model.<run_axis_fields>"]


def what_a_run_trains(config: ml_collections.ConfigDict) -> dict:
  """{flattened key: value} of the config's keys that are not RESUMABLE: what the run trains, not how."""
  from nn_jax.workdir import records
  return {key: value for key, value in records.flatten(records.config_to_dict(config)).items()
          if Trait.RESUMABLE not in traits(key)}


def program_key(config: ml_collections.ConfigDict) -> str:
  """The config without the values that ride on the run axis: equal for runs of one program."""
  from nn_jax.workdir import records
  flat = records.flatten(records.config_to_dict(config))
  return json.dumps({key: "<run axis>" if on_run_axis(key, value, config) else value
                     for key, value in flat.items()}, sort_keys=True, default=str)


def parse_profile_steps(text: str) -> tuple[int, int] | None:
  """config.profile_steps: "START:COUNT" -> (START, COUNT); "" -> None; UserError otherwise."""
  if not text:
    return None
  start, sep, count = text.partition(":")
  if not (sep and start.strip().isdigit() and count.strip().isdigit() and int(count) > 0):
    raise UserError(f"config.profile_steps {text!r} must be START:COUNT with COUNT > 0, e.g. 100:20")
  return int(start), int(count)
