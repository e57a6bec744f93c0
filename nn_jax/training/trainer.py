"""The one trainer: `train` sets runs up, runs the epoch loop, and finishes them.

Every model and dataset goes through `train(configs, workdirs)`: R >= 1 runs
trained as one program over a leading run axis. The runs' configs may differ
in the keys hparams.py marks RUN_AXIS (the seed, the learning rate, float
optimizer and schedule arguments, the model's run_axis_fields); each run gets
its own ordinary run directory, and one that diverges is recorded `diverged`
while the others go on.
`train_and_evaluate(config, workdir)` is the one-run form (R = 1). A run
resumes from its workdir's latest good checkpoint, exactly.
"""

import concurrent.futures
import contextlib
import dataclasses
import pathlib
import platform
import sys
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint

from nn_jax import data, models
from nn_jax.common import parallel
from nn_jax.common.errors import UserError
from nn_jax.training import auto, compilation_cache, hparams, interrupt, optim, program, stopping, tasks
from nn_jax.training.evaluation import Evaluator
from nn_jax.training.loop import Diverged, EpochLoop, batch_plan, due, ranked_metrics
from nn_jax.training.step import TrainState
from nn_jax.training.watchdog import Watchdog
from nn_jax.workdir import pictures, plots, records, tensorboard_hparams
from nn_jax.workdir.checkpoint import Checkpoints
from nn_jax.workdir.checkpoint_digests import tree_digest
from nn_jax.workdir.lock import RunLock
from nn_jax.workdir.status import RunStatus


class CannotVectorize(Exception):
  """Says why these runs cannot train as one program, so must train one by one."""


class ProgramTooLarge(Exception):
  """The runs' program would not fit the device's memory; `runs_that_fit` of them would."""

  def __init__(self, message: str, runs_that_fit: int):
    super().__init__(message)
    self.runs_that_fit = runs_that_fit


def _check_fits(loop: EpochLoop) -> None:
  """Raises ProgramTooLarge, before the runs' records are written, when the R runs' program needs more memory than
  a device has free (XLA's count of the compiled program; a margin left for the runtime's own)."""
  needed = loop.bytes_needed()
  free = auto.free_memory()
  if needed <= 0.9 * free:
    return
  per_run = needed / loop.runs  # the shared data counted in every run's share: an upper bound
  fit = max(1, int(0.9 * free // per_run))
  raise ProgramTooLarge(f"{loop.runs} runs need {needed / 2**30:.2f} GiB in one program, a device has "
                        f"{free / 2**30:.2f} GiB free", fit)


@dataclasses.dataclass
class Timing:
  """When a program started and where its time went (all its runs together)."""
  launch: float  # time.time() that time-to-target counts from
  wall_start: float  # time.perf_counter() at setup
  before_setup_seconds: float = 0.0  # from launch to setup: the interpreter, imports, JAX's start
  data_seconds: float = 0.0  # loading the dataset
  compile_seconds: float = 0.0  # the train programs' compilation (or loading from the persistent cache)
  train_seconds: float = 0.0
  evaluate_seconds: float = 0.0  # evaluations during and after training
  checkpoint_seconds: float = 0.0  # the part of checkpoint saves training waits for
  examples_trained: int = 0
  train_split: dict = dataclasses.field(default_factory=dict)  # host input, dispatch, device wait (loop.py)
  compilation_cache: pathlib.Path | None = None  # the persistent cache's folder; None: off
  cache_counts_at_start: tuple = (0, 0)  # compilation_cache.counts() at setup

  def phases(self, wall_seconds: float) -> dict:
    """Where the program's wall time went, in seconds; `other` is the model summary, records, pictures,
    checkpoint writes still running at the end and the like."""
    measured = {"before_setup": self.before_setup_seconds, "data": self.data_seconds,
                "compile": self.compile_seconds, "train": self.train_seconds,
                "evaluate": self.evaluate_seconds, "checkpoint": self.checkpoint_seconds}
    inside = sum(v for k, v in measured.items() if k != "before_setup")
    return {**measured, "other": max(0.0, wall_seconds - inside)}

  def compilation(self) -> dict:
    """How many programs this run compiled (train, evaluation, ...) and how many the persistent cache served."""
    requests, hits = (now - then for now, then in zip(compilation_cache.counts(), self.cache_counts_at_start))
    return {"cache": str(self.compilation_cache) if self.compilation_cache else None,
            "programs": requests, "from_cache": hits}


@dataclasses.dataclass
class Run:
  """One run's directory and what is written into it."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  status: RunStatus
  checkpoints: Checkpoints
  log: records.MetricsLog | None = None
  time_to_target: dict | None = None
  lock: "RunLock | None" = None

  def close(self) -> None:
    if self.log is not None:
      self.log.close()
    self.checkpoints.close()
    if self.lock is not None:
      self.lock.release()


@dataclasses.dataclass
class Session:
  """Everything `setup` builds; `run_loop` and `finish` use it."""
  config: ml_collections.ConfigDict  # the first run's, with auto values resolved
  choices: dict
  dataset: data.Dataset
  task: tasks.Task
  model: nn.Module
  mesh: jax.sharding.Mesh
  runs: list[Run]
  loop: EpochLoop
  evaluator: Evaluator
  timing: Timing
  microbatches: int
  ranked: list = dataclasses.field(default_factory=list)  # each run's latest {"split/metric": value}


# --- setup, loop, finish -----------------------------------------------------------------------


def check_resumable(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Refuses to resume a workdir whose run had a different config, but for run-length fields."""
  if not (workdir / "config.json").exists():
    checkpoints = workdir / "checkpoints"
    if checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir()) \
        and not config.get("allow_config_change", False):
      raise UserError(f"{workdir} holds checkpoints but no config.json, so nothing says which config trained them; "
                      f"use a new --workdir, or pass --config.allow_config_change=True to resume it anyway")
    return
  saved = records.flatten(records.read_config(workdir))
  wanted = records.flatten(records.config_to_dict(config))
  changed = [f"{key}: {saved.get(key)!r} -> {wanted.get(key)!r}" for key in sorted(set(saved) | set(wanted))
             if hparams.Trait.RESUMABLE not in hparams.traits(key) and saved.get(key) != wanted.get(key)]
  if changed and not config.get("allow_config_change", False):
    raise UserError(f"{workdir} holds a run with another config ({'; '.join(changed[:4])}"
                    f"{'; ...' if len(changed) > 4 else ''}); use a new --workdir, or pass "
                    f"--config.allow_config_change=True to resume it anyway")


def setup(configs: list, workdirs: list, launch: float | None = None, initial_params=None) -> Session:
  """Checks, loads the data, builds the model and state (restored where a checkpoint exists),
  and opens every run's directory."""
  timing = Timing(launch=launch if launch is not None else time.time(), wall_start=time.perf_counter())
  timing.before_setup_seconds = max(0.0, time.time() - timing.launch)
  base = configs[0]
  _check_one_program(configs)
  timing.compilation_cache = compilation_cache.enable(base.compilation_cache)
  timing.cache_counts_at_start = compilation_cache.counts()
  for config, workdir in zip(configs, workdirs):
    check_resumable(config, workdir)
  mesh = parallel.make_mesh()
  if base.batch_size:
    parallel.check_batch_size(base.batch_size, mesh)
  data_start = time.perf_counter()
  dataset = data.load(base.dataset)
  timing.data_seconds = time.perf_counter() - data_start
  built = program.build(configs, *dataset.splits["train"])
  runs, state, progress = _open_runs(configs, workdirs, built, mesh, initial_params)
  try:  # from here on, every run directory records this start
    primary = parallel.is_primary()
    print_model_summary(built.model, dataset.input_shape)
    if built.microbatches > 1:
      batch_size = batch_plan(base.batch_size, built.num_examples)[1]
      print(f"Each step accumulates its gradient over {built.microbatches} microbatches of "
            f"{batch_size // built.microbatches} examples.")

    def save(state, position: dict, metrics) -> None:
      for r, run in enumerate(runs):
        run_state = program.run_state(state, r)
        steps = int(run_state.step)
        if r in loop.diverged or run.checkpoints.latest_step() == steps:
          continue  # diverged: never saved; stopped early: its state, frozen, is saved already
        run_position = {**position, "sums": position["sums"][r], "stoppers": position["stoppers"][r]}
        run.checkpoints.save(run_state, run_position, metrics[r] if metrics else None)
        run.status.update(steps_done=steps, epochs_done=position["epoch"], last_checkpoint_step=steps)

    def record_stuck(details: dict, message: str) -> None:  # from the watchdog's thread, on any process
      for run in runs:
        run.status.enabled = True
        run.status.update(status="stuck", stuck=details, message=message)

    watchdog = Watchdog(base.watchdog_seconds, base.watchdog_first_seconds, on_stuck=record_stuck,
                        process=f"process {jax.process_index()} of {jax.process_count()}")
    loop = built.loop(configs, *dataset.splits["train"], mesh, state, progress, save,
                      profile_dir=runs[0].workdir / "profile", watchdog=watchdog)
    if progress is not None:
      print(f"Resuming from checkpoint at step {loop.host_step} "
            f"(epoch {progress['epoch']}, batch {progress.get('batch', 0)}).")
    if len(runs) > 1:
      _check_fits(loop)
    if primary:
      for run in runs:
        records.write_config(run.workdir, run.config)
    for run, stopper in zip(runs, loop.stoppers):
      run.status.start(run.checkpoints.latest_step())
      if stopper.stopped and "rung" in stopper.stopped:  # halted by a search, resumed to train the others on
        run.status.update(status="halted", message=stopper.stopped["reason"])
    for run, stopper in zip(runs, loop.stoppers):  # a stopped run's rows end where it stopped
      run.log = records.MetricsLog(run.workdir, resume_after_epoch=stopper.stopped["epoch"] if stopper.stopped
                                   else loop.epoch, enabled=primary)
    evaluator = Evaluator(built.model, built.task, dataset, mesh, base.eval_batch_size,
                          built.config.data_on_device == "true")
    return Session(built.config, built.choices, dataset, built.task, built.model, mesh, runs, loop, evaluator,
                   timing, built.microbatches)
  except BaseException:
    for run in runs:
      run.close()
    raise


def _open_runs(configs, workdirs, built: program.Program, mesh, initial_params):
  """Each run's directory, locked, with its state restored from its latest good checkpoint; the states
  stacked on the run axis. Refuses (before anything is written) a checkpoint this config cannot hold
  and a run already trained past config.num_epochs."""
  primary = parallel.is_primary()
  replicated = parallel.replicated(mesh)
  runs, states, progresses = [], [], []
  try:
    for config, workdir in zip(configs, workdirs):
      workdir.mkdir(parents=True, exist_ok=True)
      lock = RunLock(workdir) if primary else None
      runs.append(Run(config, workdir, RunStatus(workdir, enabled=primary), Checkpoints(
          workdir / "checkpoints", keep=config.keep_checkpoints, best_metric=config.checkpoint_best_metric,
          best_mode=config.checkpoint_best_mode, asynchronous=config.checkpoint_async), lock=lock))
    for run in runs:
      state = built.initial_state(run.config, mesh, initial_params)
      reason = run.checkpoints.incompatibility(state)
      if reason:  # refused before anything is restored, moved or written
        raise UserError(f"{run.workdir}'s checkpoint cannot be resumed with this config: {reason}; use a new "
                        f"--workdir (allow_config_change allows only changes the checkpoint can hold)")
      state, progress = _restore(run, state, replicated)
      if progress is not None and progress["epoch"] > run.config.num_epochs:
        raise UserError(f"{run.workdir} has trained {progress['epoch']} epochs already; config.num_epochs "
                        f"{run.config.num_epochs} would leave its summary claiming fewer; ask for at least "
                        f"{progress['epoch']}, or use a new --workdir")
      states.append(state)
      progresses.append(progress)
    # A stopped run (early, or halted by a search) stays where it stopped; the others train on together.
    going = [i for i, p in enumerate(progresses) if not ((p or {}).get("stoppers") or {}).get("stopped")]
    if len({json_key(progresses[i]) for i in going}) > 1:
      # A kill between the runs' saves: every run goes back to the newest step they all saved.
      common = min(int(states[i].step) if progresses[i] is not None else 0 for i in going)
      for i in going:
        if int(states[i].step) > common:
          fresh = built.initial_state(runs[i].config, mesh, initial_params)
          states[i], progresses[i] = _restore(runs[i], fresh, replicated, up_to=common)
    if len({json_key(progresses[i]) for i in going}) > 1:
      raise CannotVectorize("the runs' checkpoints are at different positions")
  except BaseException:
    for run in runs:
      run.close()
    raise
  position = progresses[going[0] if going else 0]
  progress = None if position is None else {**position, "sums": [p["sums"] for p in progresses],
                                            "stoppers": [p.get("stoppers") for p in progresses]}
  return runs, jax.device_put(program.stack(states), replicated), progress


def _restore(run: Run, state: TrainState, sharding, up_to: int | None = None):
  """The run's latest good checkpoint (up to step `up_to`), its hyperparameters those of its config."""
  restored, progress = run.checkpoints.restore_latest_good(state, sharding, up_to=up_to)
  return restored.replace(opt_state=optim.with_hyperparameters_of(restored.opt_state, state.opt_state)), progress


def json_key(progress) -> str:
  """A checkpoint position without the run's own metric sums: equal for runs saved together."""
  return "" if progress is None else f"{progress['epoch']}/{progress.get('batch', 0)}"


def _check_one_program(configs) -> None:
  """CannotVectorize unless the configs differ only in keys that ride on the run axis."""
  programs = {hparams.program_key(config) for config in configs}
  if len(programs) > 1:
    raise CannotVectorize(f"the configs differ in more than {', '.join(hparams.run_axis_keys())}")
  if len(configs) > 1 and jax.device_count() > 1:
    raise CannotVectorize(f"{jax.device_count()} devices: several runs train as one program on one device; the "
                          f"data-parallel path trains each run across all of them instead")


def variables_of(session: Session, run_index: int) -> dict:
  return program.run_state(session.loop.state, run_index).variables()


def run_loop(session: Session, stop=None, until: int | None = None) -> str:
  """Trains to the config's last epoch, logging, evaluating and checkpointing on the config's cadence.
  Returns "" when done, or the signal's name when one stopped the run (saved and resumable). `stop`: an
  interrupt.StopRequest already active (the CLI's, from start-up on); else one is made for the loop.
  `until`: pause at that epoch, evaluated but not saved (a search ranks its trials there, halts some, then
  saves with `save_paused`); call again to go on."""
  config, loop, runs = session.config, session.loop, session.runs
  eval_names = [name for name in session.dataset.splits if name != "train"]
  with contextlib.ExitStack() as stack:
    stop = stop or stack.enter_context(interrupt.StopRequest())
    for rows in loop.run(stop, until):
      _record_diverged(session)
      for run, run_rows in zip(runs, rows):
        run.log.write_rows([(epoch, "train", metrics) for epoch, metrics in run_rows])
      epoch, active = loop.epoch, [bool(run_rows) for run_rows in rows]
      evaluated = [{} for _ in runs]
      ranked = [ranked_metrics(run_rows[-1][1], {}) if run_rows else {} for run_rows in rows]
      stopped_now = False
      pause = epoch == loop.until < config.num_epochs
      if any(active) and (due(config.log_every_epochs, epoch, config.num_epochs) or pause):
        start = time.perf_counter()
        with loop.watchdog.phase("evaluation", loop.host_step):
          every_run = session.evaluator.evaluate_runs(loop.state.variables(), eval_names)
        for s, run in enumerate(runs):
          if not active[s]:
            continue
          evaluated[s] = every_run[s]
          for name, metrics in evaluated[s].items():
            run.log.write(epoch, name, metrics)
          ranked[s] = ranked_metrics(rows[s][-1][1], evaluated[s])
          if config.target_metric in ranked[s] and run.time_to_target is None and stopping.reached(
              config.target_metric, ranked[s][config.target_metric], config.target_value):
            run.time_to_target = {"metric": config.target_metric, "value": config.target_value, "epoch": epoch,
                                  "seconds_from_launch": time.time() - session.timing.launch}
          if loop.stoppers[s].update(epoch, loop.host_step, ranked[s]):
            loop.deactivate(s)
            stopped_now = True
            print(f"{_run_name(runs, s)}stopped early at epoch {epoch}: {loop.stoppers[s].stopped['reason']}.")
        session.timing.evaluate_seconds += time.perf_counter() - start
        _print_epoch(config, epoch, rows, evaluated, runs)
      session.ranked = ranked
      last = epoch == config.num_epochs or not loop.active.any()
      if (due(config.checkpoint_every_epochs, epoch, config.num_epochs) or stopped_now) and not pause:
        loop.save(ranked, force=last or stopped_now)
  loop.profiler.close()
  _record_diverged(session)
  session.timing.compile_seconds = loop.compile_seconds
  session.timing.train_seconds = loop.train_seconds
  session.timing.train_split = dict(loop.split)
  session.timing.checkpoint_seconds = loop.save_seconds
  session.timing.examples_trained = loop.examples_trained
  return loop.stopped_by


def _record_diverged(session: Session) -> None:
  """Marks the runs that diverged since the last call `diverged` in their status; the others go on."""
  for index, error in session.loop.diverged.items():
    run = session.runs[index]
    if run.status.fields.get("status") != "diverged":
      run.status.update(status="diverged", message=str(error))
      if len(session.runs) > 1:  # a single run's error is raised to its caller, which reports it
        print(f"{_run_name(session.runs, index)}{error}", flush=True)


def halt(session: Session, index: int, rung: int, reason: str) -> None:
  """Stops run `index` where it is, as early stopping does (its state frozen by the same mask), for a
  search's successive halving; its status says halted, and at which rung."""
  loop = session.loop
  loop.stoppers[index].stopped = {"reason": reason, "epoch": loop.epoch, "step": loop.host_step, "rung": rung}
  loop.deactivate(index)
  session.runs[index].status.update(status="halted", message=reason)


def save_paused(session: Session, last: bool = False) -> None:
  """Checkpoints a session that `run_loop(until=...)` paused, with its halted runs' stops, when the
  config's cadence says so; `last`: always (a run's last state is always saved)."""
  config, loop = session.config, session.loop
  if last or due(config.checkpoint_every_epochs, loop.epoch, config.num_epochs):
    loop.save(session.ranked, force=last)


def _run_name(runs, index: int) -> str:
  """How output names a run of several: its directory below the sweep's point, e.g. "lr-0.01/seed_3: "."""
  return f"{runs[index].workdir.parent.name}/{runs[index].workdir.name}: " if len(runs) > 1 else ""


def _print_epoch(config, epoch: int, rows, evaluated, runs) -> None:
  if len(runs) > 1:  # one line for the program: each run's train loss
    print(f"Epoch {epoch}/{config.num_epochs}: {len(runs)} runs, train loss "
          + " ".join(f"{run_rows[-1][1]['loss']:.4f}" if run_rows else "-" for run_rows in rows), flush=True)
    return
  line = f"Epoch {epoch}/{config.num_epochs}: train {format_metrics(rows[0][-1][1])}"
  for name, metrics in evaluated[0].items():
    line += f"; {name} {format_metrics(metrics)}"
  print(line, flush=True)
  target = runs[0].time_to_target
  if target and target["epoch"] == epoch:
    print(f"{target['metric']} reached {target['value']} at epoch {epoch}, "
          f"{target['seconds_from_launch']:.1f} s after launch.")


def finish(session: Session, painter: concurrent.futures.Executor) -> list:
  """Each run's final evaluation and predictions, and its plots and pictures handed to `painter` (a
  worker thread: they draw while the last checkpoints are written); returns what `record` writes."""
  primary = parallel.is_primary()
  start = time.perf_counter()
  with session.loop.watchdog.phase("final evaluation", session.loop.host_step):
    finals = session.evaluator.evaluate_runs(session.loop.state.variables(), list(session.dataset.splits))
  session.timing.evaluate_seconds += time.perf_counter() - start
  results = []
  for s, (run, final) in enumerate(zip(session.runs, finals)):
    if s in session.loop.diverged:
      results.append(None)
      continue
    variables = variables_of(session, s)
    start = time.perf_counter()
    with session.loop.watchdog.phase("final evaluation", session.loop.host_step):
      drawing = None
      if run.config.pictures:  # what they show is computed by every process (collective), drawn by the first
        outputs = pictures.model_outputs(session.dataset, session.evaluator, variables)
        drawing = painter.submit(_draw, session, run, outputs) if primary else None
      predictions = session.evaluator.predict(variables, run.config.predict_examples)
    session.timing.evaluate_seconds += time.perf_counter() - start
    results.append({"final": final, "predictions": predictions, "drawing": drawing,
                    "params_digest": tree_digest(variables["params"])})
  return results


def _draw(session: Session, run: Run, picture_outputs: dict) -> None:
  plots.plot_run(records.read_metrics(run.workdir), run.workdir, run.config.name or run.config.model.name,
                 session.task.curve)
  pictures.draw(run.workdir, session.dataset, picture_outputs, session.task.kind)


def record(session: Session, results: list) -> list[dict]:
  """Each run's summary.json and status "done", once its pictures are drawn; returns the summaries
  (None for a run that diverged)."""
  timing, count = session.timing, len(session.runs)
  wall = time.perf_counter() - timing.wall_start
  summaries = []
  for s, (run, result) in enumerate(zip(session.runs, results)):
    if result is None:
      summaries.append(None)
      continue
    if result["drawing"] is not None:
      result["drawing"].result()  # its error, if any, is the run's
    final = result["final"]
    steps = int(np.ravel(jax.device_get(session.loop.state.step))[s])
    stopper = session.loop.stoppers[s]
    epochs = stopper.stopped["epoch"] if stopper.stopped else run.config.num_epochs
    summary = {
        "final": final,
        "epochs": epochs,
        "steps": steps,
        "data_seconds": timing.data_seconds,
        "compile_seconds": timing.compile_seconds / count,
        "compilation": timing.compilation(),
        "train_seconds": timing.train_seconds / count,
        "train_examples_per_second": (timing.examples_trained / (timing.train_seconds / count)
                                      if timing.train_seconds else None),
        "wall_seconds": wall,
        "phases": timing.phases(wall),
        "train_split": {k: v / count for k, v in timing.train_split.items()},
        # compile_seconds, train_seconds and train_split are the program's divided by its runs; phases
        # and wall_seconds are the program's
        "runs_in_program": count,
        "microbatches": session.microbatches,
        "resolved": session.choices,
        "params_digest": result["params_digest"],
        **environment(),
    }
    if session.dataset.reference_metrics:
      summary["reference"] = session.dataset.reference_metrics
    if run.time_to_target:
      summary["time_to_target"] = run.time_to_target
    summary.update(stopper.summary())
    if count == 1:
      for name, metrics in final.items():
        reference = session.dataset.reference_metrics.get(name, {})
        print(f"Final {name}: {format_metrics(metrics)}"
              + (f" (reference: {format_metrics(reference)})" if reference else ""))
      if "test" in final and "accuracy" in final["test"]:
        print(f"Test accuracy: {final['test']['accuracy']:.2%}")
    if result["predictions"]:
      summary["predictions"] = result["predictions"]
    if parallel.is_primary():
      records.write_json(run.workdir / "summary.json", summary)
      tensorboard_hparams.write_run(run.workdir, hparams.what_a_run_trains(run.config), final, epochs)
    halted = bool(stopper.stopped) and "rung" in stopper.stopped
    run.status.update(status="halted" if halted else "done", steps_done=steps, epochs_done=epochs,
                      message=stopper.stopped["reason"] if halted else
                      f"stopped early: {stopper.stopped['reason']}" if stopper.stopped else "")
    if count == 1:
      print(f"Compile {summary['compile_seconds']:.2f} s, training {summary['train_seconds']:.2f} s after "
            f"compilation, wall {summary['wall_seconds']:.2f} s. Run directory: {run.workdir}")
    summaries.append(summary)
  if count > 1:
    print(f"{count} runs trained as one program: compile {timing.compile_seconds:.2f} s, training "
          f"{timing.train_seconds:.2f} s after compilation. Run directories: "
          + ", ".join(str(run.workdir) for run in session.runs))
  return summaries


def close(session: Session) -> None:
  for run in session.runs:
    run.close()


def train(configs: list, workdirs: list, launch: float | None = None, initial_params=None,
          stop=None) -> list[dict] | None:
  """Trains each config into its workdir as one program and returns their summaries.

  The configs may differ only in keys hparams.py marks RUN_AXIS. A run whose loss or gradient becomes NaN or
  Inf is recorded `diverged` and its summary is None; Diverged is raised when every run diverged.
  Returns None when a signal stopped the runs (saved and resumable). CannotVectorize when the runs
  cannot train together (configs that differ in more, checkpoints at different positions): run
  them one by one then; ProgramTooLarge when their program would not fit a device's memory (before
  their config or status is written): train fewer at a time then.
  `launch` is the time.time() time-to-target counts from (default: now); `stop` an active
  interrupt.StopRequest (the CLI's, so that a signal during start-up stops cleanly too).
  """
  session = setup(configs, [pathlib.Path(w) for w in workdirs], launch, initial_params)
  try:
    return _train_session(session, stop)
  except Exception as error:
    record_failure(session, error)
    raise
  finally:
    session.loop.watchdog.close()  # after finish: its final evaluation is watched too


def record_failure(session: Session, error: Exception) -> None:
  """Marks the runs still `running` as `failed`, with the error, so that status.json does not claim a run
  that no process trains (best effort: on a full disk the status may not be written either)."""
  for run in session.runs:
    if run.status.fields.get("status") == "running":
      with contextlib.suppress(OSError):
        run.status.update(status="failed", message=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                          if str(error) else type(error).__name__)


def _train_session(session: Session, stop) -> list[dict] | None:
  try:
    stopped_by = run_loop(session, stop)
  except BaseException:
    close(session)
    raise
  return conclude(session, stopped_by)


def conclude(session: Session, stopped_by: str = "") -> list[dict] | None:
  """After `run_loop`: the runs' final evaluation and records (or, when `stopped_by` a signal, their
  status preempted), their directories closed; returns what `train` returns."""
  results = None
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nn_jax-pictures") as painter:
    try:
      if not stopped_by and len(session.loop.diverged) < len(session.runs):
        results = finish(session, painter)
    finally:
      with session.loop.watchdog.phase("finishing checkpoint writes", session.loop.host_step):
        close(session)
  if stopped_by:
    loop = session.loop
    message = (f"Stopped by {stopped_by} at step {loop.host_step}; checkpoint saved. "
               f"Resume by running the same command again (same --workdir).")
    for run in session.runs:
      if run.status.fields.get("status") != "halted":
        run.status.update(status="preempted", preemptions=run.status.fields["preemptions"] + 1, message=message)
    print(message)
    if jax.process_count() > 1:  # every process's own log (stderr) says where it stopped
      print(f"process {jax.process_index()} of {jax.process_count()}: stopped at step {loop.host_step}",
            file=sys.stderr, flush=True)
    return None
  if results is None:  # every run diverged
    raise session.loop.diverged[0]
  return record(session, results)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir, launch: float | None = None,
                       initial_params=None, stop=None) -> dict | None:
  """Trains one config into `workdir`; its summary, or None when a signal stopped it."""
  summaries = train([config], [workdir], launch, initial_params, stop)
  return None if summaries is None else summaries[0]


# --- reporting ---------------------------------------------------------------------------------


def format_metrics(metrics: dict) -> str:
  shown = sorted((item for item in metrics.items() if item[0] != "grad_norm"), key=lambda item: item[0] != "loss")
  return ", ".join(f"{k} {v:.2%}" if k == "accuracy" else f"{k} {v:.4f}" for k, v in shown)


def print_model_summary(model: nn.Module, input_shape) -> None:
  """Flax's table of the model's layers, shapes and parameters, from shapes alone (nothing is compiled)."""
  table = nn.tabulate(model, jax.random.key(0),
                      console_kwargs={"force_terminal": False, "no_color": True, "width": 100})
  print(table(jnp.zeros((1, *input_shape), jnp.float32)))


def environment() -> dict:
  """Where the run ran. The CPU model too: bit-identical reruns hold on the same machine and software; on
  another CPU type the last digits move (XLA blocks its matmuls per CPU)."""
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": device.device_kind, "device_count": jax.device_count(),
          "cpu": cpu_model(), "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                       "orbax_checkpoint": orbax.checkpoint.__version__}}


def cpu_model() -> str:
  """The host CPU's model name, e.g. "AMD EPYC 7B13" (Linux: /proc/cpuinfo; elsewhere what Python knows)."""
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
  except OSError:
    names = []
  return f"{names[0]} x {len(names)}" if names else (platform.processor() or platform.machine())


def restore_for_inference(workdir: pathlib.Path):
  """(config, model, variables) of a run's latest checkpoint, without its optimizer state."""
  config = ml_collections.ConfigDict(records.read_config(workdir))
  resolved = auto.resolve(config)
  model = models.build(resolved.model, config.get("compute_dtype", "float32"))
  checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
  variables = checkpoints.restore_variables(parallel.replicated(parallel.make_mesh()))
  checkpoints.close()
  return config, model, variables
