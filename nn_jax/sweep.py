"""`python -m nn_jax sweep --sweep FILE --workdir DIR`: a grid of ordinary runs, seeds vectorized.

A sweep file defines `get_sweep()` returning a dict:
  config     the experiment, as --config takes it ("experiments/x.py[:variant]")
  overrides  {dotted key: value} applied to every run (optional)
  axes       {dotted key: [values, ...]}: the grid is their product (optional)
  seeds      [seed, ...]
  vectorize_seeds  train a point's seeds as one vmapped program (default True)
  slurm      {submitit parameter: value} for --launcher slurm (optional; nn_jax/slurm.py)

Every run gets DIR/<point>/seed_<n>/, an ordinary run directory. Starting the
sweep again skips finished runs and resumes unfinished ones from their
checkpoints, still vectorized where the seeds were saved together. The local
launcher runs the points here, one after another; `slurm` submits one job-array
task per point (nn_jax/slurm.py).
"""

import importlib.util
import itertools
import json
import os
import pathlib

from nn_jax import config as config_lib
from nn_jax import records, trainer
from nn_jax.errors import UserError
from nn_jax.lock import RunLock
from nn_jax.loop import Diverged

SWEEP_KEYS = {"config", "overrides", "axes", "seeds", "vectorize_seeds", "slurm"}


def load_sweep(path: str) -> dict:
  if not os.path.isfile(path):
    raise UserError(f"sweep file {path!r} does not exist; pass e.g. --sweep experiments/sweeps/rnn_cells.py")
  spec = importlib.util.spec_from_file_location("nn_jax_sweep", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    sweep = module.get_sweep()
  except Exception as e:  # the file is the user's code: its error is reported, in one line
    raise UserError(f"sweep file {path} raised {type(e).__name__}: {e}; fix the file") from e
  unknown = set(sweep) - SWEEP_KEYS
  if unknown or "config" not in sweep or "seeds" not in sweep:
    raise UserError(f"sweep {path}: get_sweep() must return config, seeds and optionally overrides, axes, "
                    f"vectorize_seeds, slurm (unknown: {', '.join(sorted(unknown)) or 'none'})")
  seeds = list(sweep["seeds"])
  if not seeds:
    raise UserError(f"sweep {path}: seeds is empty; give at least one seed")
  if len(set(seeds)) < len(seeds):
    raise UserError(f"sweep {path}: seeds {seeds} repeat a seed; each seed gets one run directory, give each once")
  if not isinstance(sweep.get("slurm", {}), dict):
    raise UserError(f"sweep {path}: slurm must be a dict of submitit parameters, e.g. {{'timeout_min': 120}}")
  for key, values in sweep.get("axes", {}).items():
    if not values:
      raise UserError(f"sweep {path}: axis {key!r} has no values, so the grid is empty; give it at least one")
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


def run_dir(root: pathlib.Path, point: dict, config) -> pathlib.Path:
  """The run directory of one seed of a grid point."""
  return root / point_name(point) / f"seed_{config.seed}"


def _status(workdir: pathlib.Path) -> str:
  try:
    return json.loads((workdir / "status.json").read_text())["status"]
  except (OSError, ValueError, KeyError):
    return "new"


def _check_unchanged(expanded, root: pathlib.Path) -> None:
  """Refuses, before any training, a sweep whose edited file would resume runs trained with other configs."""
  changed = []
  for point, configs in expanded:
    for config in configs:
      workdir = run_dir(root, point, config)
      try:
        trainer.check_resumable(config, workdir)
      except UserError:
        changed.append(str(workdir.relative_to(root)))
  if changed:
    raise UserError(f"the sweep's configs changed since these runs trained: {', '.join(changed[:4])}"
                    f"{' ...' if len(changed) > 4 else ''}; remove them to retrain, restore the sweep file, or "
                    f"use a new --workdir")


def run_sweep(sweep_path: str, root: pathlib.Path, stop=None, launcher: str = "local",
              slurm_parameters: dict | None = None, wait: bool = False) -> bool:
  """Runs what is missing of the sweep; returns False when a signal stopped it (`stop`: an
  interrupt.StopRequest, checked between runs too). A diverging point is recorded as diverged (its
  status.json; the report lists it) and the sweep goes on. `launcher` "slurm" or "submitit_local"
  submits one task per unfinished point instead (nn_jax/slurm.py); "slurm" waits only when `wait`."""
  sweep = load_sweep(sweep_path)
  expanded = expand(sweep)
  _check_unchanged(expanded, root)
  if launcher != "local":
    from nn_jax import slurm  # checks the parameters before anything is written
    parameters = {**sweep.get("slurm", {}), **(slurm_parameters or {})}
    slurm.check(launcher, parameters)
  root.mkdir(parents=True, exist_ok=True)
  lock = RunLock(root)
  try:
    records.write_text_atomically(root / "sweep.json",
                                  json.dumps({"sweep": sweep_path, **sweep}, indent=2, default=str) + "\n")
    if launcher != "local":
      todo = [i for i, (point, configs) in enumerate(expanded) if _runs_to_do(point, configs, root)]
      if not todo:
        print(f"All {len(expanded)} points are done; make report DIR={root}")
        return True
      jobs = slurm.submit(launcher, sweep_path, root, todo, parameters, name=root.name)
      print(f"Submitted {len(jobs)} tasks (one per unfinished grid point) as job {jobs[0].job_id.split('_')[0]}; "
            f"logs in {root / 'submitit'}/. When they are done: make report DIR={root}", flush=True)
      return slurm.wait(jobs, stop) if wait or launcher == "submitit_local" else True
    for point, configs in expanded:
      if not _run_point(point, configs, root, sweep.get("vectorize_seeds", True), stop):
        return False
    return True
  finally:
    lock.release()


def run_point(sweep_path: str, root: pathlib.Path, index: int, stop=None) -> bool:
  """Grid point `index` of the sweep (a cluster task's work); False when a signal stopped it."""
  sweep = load_sweep(sweep_path)
  point, configs = expand(sweep)[index]
  return _run_point(point, configs, root, sweep.get("vectorize_seeds", True), stop)


def _runs_to_do(point, configs, root: pathlib.Path) -> list[tuple]:
  """[(config, run directory), ...] of the point's seeds not done (nor diverged)."""
  runs = [(config, run_dir(root, point, config)) for config in configs]
  return [(config, workdir) for config, workdir in runs if _status(workdir) not in ("done", "diverged")]


def _run_point(point, configs, root: pathlib.Path, vectorize: bool, stop) -> bool:
  name = point_name(point)
  todo = _runs_to_do(point, configs, root)
  print(f"== {name}: {len(configs) - len(todo)} of {len(configs)} runs done", flush=True)
  if stop is not None and stop.requested:
    return False
  if vectorize and len(todo) > 1:
    try:
      return trainer.train([c for c, _ in todo], [w for _, w in todo], stop=stop) is not None
    except trainer.CannotVectorize as reason:
      print(f"Seeds of {name} run one by one: {reason}", flush=True)
  for config, workdir in todo:
    if _status(workdir) in ("done", "diverged"):
      continue
    if stop is not None and stop.requested:
      return False
    try:
      if trainer.train_and_evaluate(config, workdir, stop=stop) is None:
        return False
    except Diverged as e:
      print(f"{workdir.relative_to(root)} diverged; the sweep goes on ({e})", flush=True)
  return True
