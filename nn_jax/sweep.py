"""`python -m nn_jax sweep --sweep FILE --workdir DIR`: a grid of ordinary runs, seeds vectorized.

A sweep file defines `get_sweep()` returning a dict:
  config     the experiment, as --config takes it ("experiments/x.py[:variant]")
  overrides  {dotted key: value} applied to every run (optional)
  axes       {dotted key: [values, ...]}: the grid is their product (optional)
  seeds      [seed, ...]
  vectorize_seeds  train a point's seeds as one vmapped program (default True)

Every run gets DIR/<point>/seed_<n>/, an ordinary run directory. Starting the
sweep again skips finished runs and resumes unfinished ones from their
checkpoints, still vectorized where the seeds were saved together.
"""

import importlib.util
import itertools
import json
import os
import pathlib

from nn_jax import config as config_lib
from nn_jax import train
from nn_jax.errors import UserError

SWEEP_KEYS = {"config", "overrides", "axes", "seeds", "vectorize_seeds"}


def load_sweep(path: str) -> dict:
  if not os.path.isfile(path):
    raise UserError(f"sweep file {path!r} does not exist; pass e.g. --sweep experiments/sweeps/rnn_cells.py")
  spec = importlib.util.spec_from_file_location("nn_jax_sweep", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  sweep = module.get_sweep()
  unknown = set(sweep) - SWEEP_KEYS
  if unknown or "config" not in sweep or not sweep.get("seeds"):
    raise UserError(f"sweep {path}: get_sweep() must return config, seeds and optionally overrides, axes, "
                    f"vectorize_seeds (unknown: {', '.join(sorted(unknown)) or 'none'})")
  return sweep


def point_name(point: dict) -> str:
  """A folder name for a grid point: model.units=50, model.cell=gru -> cell-gru_units-50."""
  parts = [f"{key.split('.')[-1]}-{value}" for key, value in point.items()]
  return "_".join(parts).replace("/", "-").replace(" ", "") or "base"


def expand(sweep: dict) -> list[tuple[dict, list]]:
  """[(point, [config per seed]), ...], every config loaded, overridden and validated before any training."""
  axes = sweep.get("axes", {})
  points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
  expanded = []
  for point in points:
    configs = [config_lib.load(sweep["config"], {**sweep.get("overrides", {}), **point, "seed": seed})
               for seed in sweep["seeds"]]
    expanded.append((point, configs))
  return expanded


def _status(workdir: pathlib.Path) -> str:
  try:
    return json.loads((workdir / "status.json").read_text())["status"]
  except (OSError, ValueError, KeyError):
    return "new"


def run_sweep(sweep_path: str, root: pathlib.Path) -> bool:
  """Runs what is missing of the sweep; returns False when a signal stopped it."""
  sweep = load_sweep(sweep_path)
  expanded = expand(sweep)
  root.mkdir(parents=True, exist_ok=True)
  (root / "sweep.json").write_text(json.dumps({"sweep": sweep_path, **sweep}, indent=2, default=str) + "\n")
  for point, configs in expanded:
    name = point_name(point)
    workdirs = [root / name / f"seed_{config.seed}" for config in configs]
    todo = [(c, w) for c, w in zip(configs, workdirs) if _status(w) != "done"]
    print(f"== {name}: {len(configs) - len(todo)} of {len(configs)} runs done", flush=True)
    if sweep.get("vectorize_seeds", True) and len(todo) > 1:
      try:
        if train.train([c for c, _ in todo], [w for _, w in todo]) is None:
          return False
        continue
      except train.CannotVectorize as reason:
        print(f"Seeds of {name} run one by one: {reason}", flush=True)
    for config, workdir in todo:
      if _status(workdir) == "done":
        continue
      if train.train_and_evaluate(config, workdir) is None:
        return False
  return True
