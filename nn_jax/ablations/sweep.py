"""`python -m nn_jax sweep --sweep FILE --workdir DIR`: a grid of ordinary runs, trained program by program.

A sweep file defines `get_sweep()` returning a dict:
  config     the experiment, as --config takes it ("experiments/x.py[:variant]")
  overrides  {dotted key: value} applied to every run (optional)
  axes       {dotted key: [values, ...]}: the grid is their product (optional)
  seeds      [seed, ...]: each point's runs (the seed is never an axis or an override)
  runs_per_program  at most this many runs in one program (optional; default 0: as many as fit the
             device's memory; 1: one by one)
  pictures   draw each run's learning curves and pictures (optional; default False: the report draws the
             sweep's own)
  slurm      {submitit parameter: value} for --launcher slurm (optional; nn_jax/ablations/slurm.py)
A search draws its points instead of (or within each point of) the grid (nn_jax/ablations/search.py):
  space      {dotted key: distribution}, e.g. {"optimizer.learning_rate": ("log_uniform", 1e-4, 1e-1)}
  trials     how many points to draw (within each grid point, when there are axes too)
  sampler    "quasi_random" (default: a scrambled Halton sequence) or "random"
  search_seed  the sequence's seed (default 0): the same points on every machine
  halving    {"metric": "validation/loss", "mode": "auto", "every_epochs": N, "keep": 0.5}: successive
             halving (nn_jax/ablations/halving.py); without it every trial trains to num_epochs

Every run gets DIR/<point>/seed_<n>/, an ordinary run directory; a search's point is named by its
trial number and values, e.g. trial-07_learning_rate-0.003123_units-32. Runs whose
configs differ only in keys nn_jax/training/hparams.py marks RUN_AXIS (the seed, the learning rate, float
optimizer and schedule arguments, the model's run_axis_fields such as dropout
rates) train together as one compiled program, vmapped over the run axis; the
sweep prints the programs it formed. A program that XLA counts too large for a
device's free memory is cut into as many runs as fit. Starting the sweep again
skips finished runs and resumes unfinished ones from their checkpoints, still
together where they were saved together. The local launcher runs the programs
here, one after another; `slurm` submits one job-array task per program
(nn_jax/ablations/slurm.py).
"""

import dataclasses
import itertools
import json
import pathlib

from nn_jax import config as config_lib
from nn_jax.ablations import halving, report, search
from nn_jax.common import metrics, user_files
from nn_jax.common.errors import UserError
from nn_jax.training import hparams, trainer
from nn_jax.training.loop import Diverged
from nn_jax.workdir import records
from nn_jax.workdir.lock import RunLock

SWEEP_KEYS = {"config", "overrides", "axes", "seeds", "runs_per_program", "pictures", "slurm", "space", "trials",
              "sampler", "search_seed", "halving"}
HALVING_KEYS = {"metric": "a SPLIT/NAME to rank by, e.g. validation/loss", "mode": '"auto", "min" or "max"',
                "every_epochs": "epochs per rung, an int >= 1", "keep": "the fraction kept at each rung, in (0, 1)"}


def load_sweep(path: str) -> dict:
  module = user_files.execute(path, "sweep file", "--sweep experiments/sweeps/rnn_cells.py")
  try:
    sweep = module.get_sweep()
  except Exception as e:  # the file is the user's code: its error is reported, in one line
    raise UserError(f"sweep file {path} raised {type(e).__name__}: {e}; fix the file") from e
  if not isinstance(sweep, dict):
    raise UserError(f"sweep {path}: get_sweep() returned {type(sweep).__name__}, not a dict; return e.g. "
                    f"{{'config': 'experiments/house_mlp.py', 'seeds': [0, 1]}}")
  unknown = set(sweep) - SWEEP_KEYS
  if unknown or "config" not in sweep or "seeds" not in sweep:
    raise UserError(f"sweep {path}: get_sweep() must return config, seeds and optionally overrides, axes, "
                    f"runs_per_program, pictures, slurm, space, trials, sampler, search_seed, halving (unknown: "
                    f"{', '.join(sorted(unknown)) or 'none'})")
  for key in ("overrides", "axes", "slurm", "space", "halving"):
    if not isinstance(sweep.get(key, {}), dict):
      raise UserError(f"sweep {path}: {key} must be a dict {{dotted key: value{'s' * (key == 'axes')}}}, got "
                      f"{type(sweep[key]).__name__}")
  seeds = sweep["seeds"]
  if not isinstance(seeds, (list, tuple)) or not all(_is_int(seed) for seed in seeds):
    raise UserError(f"sweep {path}: seeds must be a list of ints, e.g. [0, 1, 2], got {seeds!r}")
  if not seeds:
    raise UserError(f"sweep {path}: seeds is empty; give at least one seed")
  if len(set(seeds)) < len(seeds):
    raise UserError(f"sweep {path}: seeds {list(seeds)} repeat a seed; each seed gets one run directory, give each "
                    f"once")
  if "seed" in sweep.get("axes", {}) or "seed" in sweep.get("overrides", {}) or "seed" in sweep.get("space", {}):
    raise UserError(f"sweep {path}: seed is not an axis, an override or a searched key; list the seeds in seeds")
  _check_search(sweep, path)
  if not isinstance(sweep.get("pictures", False), bool):
    raise UserError(f"sweep {path}: pictures must be True or False, got {sweep['pictures']!r}")
  cap = sweep.get("runs_per_program", 0)
  if not _is_int(cap) or cap < 0:
    raise UserError(f"sweep {path}: runs_per_program must be an int >= 0 (0: no limit, 1: one run at a time), "
                    f"got {cap!r}")
  for key, values in sweep.get("axes", {}).items():
    if not isinstance(values, (list, tuple)):
      raise UserError(f"sweep {path}: axis {key!r} must be a list of values, got {values!r}; write [{values!r}]")
    if not values:
      raise UserError(f"sweep {path}: axis {key!r} has no values, so the grid is empty; give it at least one")
    names = [point_name({key: value}) for value in values]
    if len(set(names)) < len(names):
      raise UserError(f"sweep {path}: axis {key!r} repeats a value ({values!r}); two points would share one "
                      f"folder, give each value once")
  return sweep


def _check_search(sweep: dict, path: str) -> None:
  space = sweep.get("space", {})
  search.check_space(space, f"sweep {path}")
  both = sorted(set(space) & set(sweep.get("axes", {})))
  if both:
    raise UserError(f"sweep {path}: {both[0]} is both an axis and a searched key; keep it in one of them")
  if space and not (_is_int(sweep.get("trials")) and sweep["trials"] >= 1):
    raise UserError(f"sweep {path}: a space needs trials, the number of points to draw (an int >= 1), got "
                    f"{sweep.get('trials')!r}")
  for key in ("trials", "sampler", "search_seed"):
    if key in sweep and not space:
      raise UserError(f"sweep {path}: {key} needs a space to draw from; add space: {{dotted key: distribution}}")
  if sweep.get("sampler", "quasi_random") not in search.SAMPLERS:
    raise UserError(f"sweep {path}: sampler {sweep['sampler']!r} is not one of {', '.join(search.SAMPLERS)}")
  if not _is_int(sweep.get("search_seed", 0)):
    raise UserError(f"sweep {path}: search_seed must be an int, got {sweep['search_seed']!r}")
  halving = sweep.get("halving")
  if halving is None:
    return
  unknown = sorted(set(halving) - set(HALVING_KEYS))
  missing = sorted({"metric", "every_epochs", "keep"} - set(halving))
  if unknown or missing:
    wrong = f"has unknown {', '.join(unknown)}" if unknown else f"lacks {', '.join(missing)}"
    raise UserError(f"sweep {path}: halving {wrong}; its keys: "
                    + "; ".join(f"{key}: {meaning}" for key, meaning in HALVING_KEYS.items()))
  metric, every, keep = halving["metric"], halving["every_epochs"], halving["keep"]
  if not isinstance(metric, str) or metric.count("/") != 1:
    raise UserError(f"sweep {path}: halving metric {metric!r} must be SPLIT/NAME, e.g. validation/loss")
  if halving.get("mode", "auto") not in ("auto", "min", "max"):
    raise UserError(f"sweep {path}: halving mode {halving['mode']!r} must be auto, min or max")
  if not (_is_int(every) and every >= 1):
    raise UserError(f"sweep {path}: halving every_epochs must be an int >= 1, got {every!r}")
  if not (isinstance(keep, (int, float)) and 0 < keep < 1):
    raise UserError(f"sweep {path}: halving keep must be a fraction in (0, 1), e.g. 0.5, got {keep!r}")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def point_name(point: dict) -> str:
  """A folder name for a grid point: model.units=50, model.cell=gru -> cell-gru_units-50."""
  parts = [f"{key.split('.')[-1]}-{value}" for key, value in point.items()]
  return "_".join(parts).replace("/", "-").replace(" ", "") or "base"


@dataclasses.dataclass
class Point:
  """A grid point or a search's trial: its folder name, the values it sets, one config per seed."""
  name: str
  values: dict  # {dotted key: value}: the grid point's and the trial's
  configs: list
  bracket: str = ""  # the grid point a trial was drawn in ("" without axes): halving ranks within it
  trial: int | None = None


def expand(sweep: dict) -> list[Point]:
  """The sweep's points, every config loaded, overridden and validated before any training."""
  axes = sweep.get("axes", {})
  grid = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
  space = sweep.get("space", {})
  trials = search.sample(space, sweep["trials"], sweep.get("sampler", "quasi_random"),
                         sweep.get("search_seed", 0)) if space else [None]
  width = len(str(len(trials) - 1))
  expanded = []
  for point in grid:
    for index, drawn in enumerate(trials):
      values = {**point, **(drawn or {})}
      name = point_name(point) if drawn is None else "_".join(
          ([point_name(point)] if point else []) + [f"trial-{index:0{width}d}", point_name(drawn)])
      settings = {"pictures": bool(sweep.get("pictures", False)), **sweep.get("overrides", {}), **values}
      configs = [config_lib.load(sweep["config"], {**settings, "seed": seed}) for seed in sweep["seeds"]]
      expanded.append(Point(name, values, configs, point_name(point) if point else "",
                            None if drawn is None else index))
  if "halving" in sweep:
    _check_halving(sweep["halving"], expanded)
  return expanded


def _check_halving(halving: dict, expanded: list[Point]) -> None:
  """Refuses a halving metric no run evaluates, and rungs that do not fit the runs' epochs."""
  from nn_jax import data
  from nn_jax.training import tasks
  metrics.mode(halving["metric"], halving.get("mode", "auto"))  # a direction declared and not contradicted
  split, name = halving["metric"].split("/")
  for point in expanded:
    config = point.configs[0]
    splits = data.spec(config.dataset.name).splits + (("validation",) if config.dataset.validation_fraction else ())
    if split not in splits:
      hint = ("; a validation split needs overrides {'dataset.validation_fraction': 0.2}" if split == "validation"
              else "")
      raise UserError(f"halving metric {halving['metric']!r}: {point.name} has no {split} split (it has "
                      f"{', '.join(splits)}){hint}")
    names = tasks.TASKS[config.loss].metric_names
    if name not in names:
      raise UserError(f"halving metric {halving['metric']!r}: {config.loss} runs report {', '.join(names)}")
    if halving["every_epochs"] >= config.num_epochs:
      raise UserError(f"halving every_epochs {halving['every_epochs']} leaves no rung before num_epochs "
                      f"{config.num_epochs}; use fewer epochs per rung")
  if len({point.configs[0].num_epochs for point in expanded}) > 1:
    raise UserError("halving needs every trial to train the same num_epochs; do not search or sweep num_epochs")


def run_dir(root: pathlib.Path, point: Point, config) -> pathlib.Path:
  """The run directory of one seed of a point."""
  return root / point.name / f"seed_{config.seed}"


def programs(sweep: dict, expanded, root: pathlib.Path) -> list[list[tuple]]:
  """The sweep's runs as programs: [[(config, run directory), ...], ...] in grid order, runs grouped when
  their configs differ only in keys hparams.py marks RUN_AXIS, a group cut into chunks of sweep["runs_per_program"]
  (0: no limit). Every run of the sweep, done or not, so that an index names the same runs in every
  process (a cluster task's)."""
  groups = {}
  for point in expanded:
    for config in point.configs:
      groups.setdefault(hparams.program_key(config), []).append((config, run_dir(root, point, config)))
  cap = sweep.get("runs_per_program", 0) or max(len(group) for group in groups.values())
  return [group[start:start + cap] for group in groups.values() for start in range(0, len(group), cap)]


def program_name(runs: list[tuple]) -> str:
  """The grid points a program trains, e.g. "units-16_lr-0.01 (+3 points)"."""
  points = list(dict.fromkeys(workdir.parent.name for _, workdir in runs))
  return points[0] + (f" (+{len(points) - 1} points)" if len(points) > 1 else "")


def _status(workdir: pathlib.Path) -> str:
  try:
    return json.loads((workdir / "status.json").read_text())["status"]
  except (OSError, ValueError, KeyError):
    return "new"


def _check_unchanged(expanded, root: pathlib.Path) -> None:
  """Refuses, before any training, a sweep whose edited file would resume runs trained with other configs."""
  changed = []
  for point in expanded:
    for config in point.configs:
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
              slurm_parameters: dict | None = None, wait: bool = False, expanded: list | None = None) -> bool:
  """Runs what is missing of the sweep; returns False when a signal stopped it (`stop`: an
  interrupt.StopRequest, checked between runs too). A diverging point is recorded as diverged (its
  status.json; the report lists it) and the sweep goes on. `launcher` "slurm" or "submitit_local"
  submits one task per unfinished point instead (nn_jax/ablations/slurm.py); "slurm" waits only when `wait`.
  `expanded`: the sweep's points, when the caller has them already."""
  sweep = load_sweep(sweep_path)
  expanded = expanded or expand(sweep)
  _check_unchanged(expanded, root)
  if launcher != "local" and "halving" in sweep:
    raise UserError(f"--launcher {launcher}: a search with halving ranks all its trials at each rung, so its "
                    f"programs train together in one process; use --launcher local (on one node)")
  if launcher != "local":
    from nn_jax.ablations import slurm  # checks the parameters before anything is written
    parameters = {**sweep.get("slurm", {}), **(slurm_parameters or {})}
    slurm.check(launcher, parameters)
  root.mkdir(parents=True, exist_ok=True)
  lock = RunLock(root)
  try:
    records.write_text_atomically(root / "sweep.json",
                                  json.dumps({"sweep": sweep_path, **sweep}, indent=2, default=str) + "\n")
    groups = programs(sweep, expanded, root)
    print(f"{sum(len(runs) for runs in groups)} runs in {len(groups)} programs: "
          + ", ".join(f"{program_name(runs)}: {len(runs)}" for runs in groups), flush=True)
    if launcher != "local":
      todo = [i for i, runs in enumerate(groups) if _runs_to_do(runs)]
      if not todo:
        print(f"All {len(groups)} programs are done; make report DIR={root}")
        return True
      jobs = slurm.submit(launcher, run_program, sweep_path, root, todo, parameters, name=root.name)
      print(f"Submitted {len(jobs)} tasks (one per unfinished program) as job {jobs[0].job_id.split('_')[0]}; "
            f"logs in {root / 'submitit'}/. When they are done: make report DIR={root}", flush=True)
      return slurm.wait(jobs, stop) if wait or launcher == "submitit_local" else True
    if "halving" in sweep:
      todo = [left for runs in groups if (left := _runs_to_do(runs))]
      print(f"Successive halving: {len(todo)} programs trained together, ranked by {sweep['halving']['metric']} "
            f"every {sweep['halving']['every_epochs']} epochs", flush=True)
      if not halving.run(sweep, expanded, todo, root, stop, _open_sessions):
        return False
    else:
      for runs in groups:
        if not _run_program(runs, root, stop):
          return False
    report.write_tensorboard_experiment(root)
    print(f"The sweep is done: make report DIR={root}, or tensorboard --logdir {root} (HParams)", flush=True)
    return True
  finally:
    lock.release()


def _open_sessions(runs: list[tuple]) -> list:
  """Trainer sessions for a program's runs (halted ones included: a program keeps its runs to the end): one,
  or several when they do not fit a device's memory or cannot train together."""
  configs, workdirs = [c for c, _ in runs], [w for _, w in runs]
  try:
    return [trainer.setup(configs, workdirs)]
  except trainer.ProgramTooLarge as reason:
    fit = reason.runs_that_fit
    print(f"{program_name(runs)}: {reason}; its runs train {fit} at a time", flush=True)
    return [session for start in range(0, len(runs), fit) for session in _open_sessions(runs[start:start + fit])]
  except trainer.CannotVectorize as reason:
    if len(runs) == 1:
      raise
    print(f"The runs of {program_name(runs)} train one by one: {reason}", flush=True)
    return [session for run in runs for session in _open_sessions([run])]


def run_program(sweep_path: str, root: pathlib.Path, index: int, stop=None) -> bool:
  """Program `index` of the sweep (a cluster task's work); False when a signal stopped it."""
  sweep = load_sweep(sweep_path)
  return _run_program(programs(sweep, expand(sweep), root)[index], root, stop)


def _runs_to_do(runs: list[tuple]) -> list[tuple]:
  """The (config, run directory) pairs of `runs` not finished: done, diverged, or halted by a search and
  recorded (a halted run's summary comes when its program ends)."""
  def finished(workdir):
    status = _status(workdir)
    return status in ("done", "diverged") or (status == "halted" and (workdir / "summary.json").is_file())
  return [(config, workdir) for config, workdir in runs if not finished(workdir)]


def _relative(runs: list[tuple], root: pathlib.Path) -> str:
  return ", ".join(str(workdir.relative_to(root)) for _, workdir in runs)


def _run_program(runs: list[tuple], root: pathlib.Path, stop) -> bool:
  name = program_name(runs)
  todo = _runs_to_do(runs)
  print(f"== {name}: {len(runs) - len(todo)} of {len(runs)} runs done", flush=True)
  if stop is not None and stop.requested:
    return False
  if not todo:
    return True
  try:
    return trainer.train([c for c, _ in todo], [w for _, w in todo], stop=stop) is not None
  except Diverged as e:  # every run of the program: each one's status says so
    print(f"{_relative(todo, root)} diverged; the sweep goes on ({e})", flush=True)
    return True
  except trainer.ProgramTooLarge as reason:
    fit = reason.runs_that_fit
    print(f"{name}: {reason}; its runs train {fit} at a time", flush=True)
    return all(_run_program(todo[start:start + fit], root, stop) for start in range(0, len(todo), fit))
  except trainer.CannotVectorize as reason:
    print(f"The runs of {name} train one by one: {reason}", flush=True)
  for config, workdir in todo:
    if not _runs_to_do([(config, workdir)]):
      continue
    if stop is not None and stop.requested:
      return False
    try:
      if trainer.train_and_evaluate(config, workdir, stop=stop) is None:
        return False
    except Diverged as e:
      print(f"{_relative([(config, workdir)], root)} diverged; the sweep goes on ({e})", flush=True)
  return True
