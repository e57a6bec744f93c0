"""The one trainer: `train` sets runs up, runs the epoch loop, and finishes them.

Every model, dataset and seed count goes through `train(configs, workdirs)`:
one config and run directory, or several configs that differ only in the seed,
trained as one program vmapped over a leading seed axis (each seed still gets
its own ordinary run directory). `train_and_evaluate(config, workdir)` is the
one-run form. A run resumes from its workdir's latest good checkpoint, exactly.
"""

import contextlib
import dataclasses
import pathlib
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

from nn_jax import auto, data, interrupt, models, optim, parallel, pictures, plots, records, stopping, tasks
from nn_jax.checkpoint import Checkpoints, tree_digest
from nn_jax.errors import UserError
from nn_jax.evaluation import Evaluator
from nn_jax.lock import RunLock
from nn_jax.loop import Diverged, EpochLoop, batch_plan, due, ranked_metrics, seed_keys
from nn_jax.status import RunStatus
from nn_jax.step import TrainState, make_train_step
from nn_jax.watchdog import Watchdog

# Fields that say how long, how verbosely, where or how fast to run, not what; a resumed run may
# change them (K steps per dispatch and where the data lives give the same numbers: tested).
RESUMABLE_CHANGES = {"num_epochs", "progress", "profile_steps", "stop", "log_every_epochs", "checkpoint_every_epochs",
                     "checkpoint_every_steps", "checkpoint_min_interval_seconds", "checkpoint_async",
                     "keep_checkpoints", "allow_config_change", "distributed", "steps_per_dispatch",
                     "data_on_device", "deterministic", "target_metric", "target_value", "predict_examples",
                     "watchdog_seconds", "watchdog_first_seconds"}


class CannotVectorize(Exception):
  """Says why these seeds must train one by one."""


@dataclasses.dataclass
class Timing:
  """When a run started and where its time went; seconds are per seed."""
  launch: float  # time.time() that time-to-target counts from
  wall_start: float  # time.perf_counter() at setup
  before_setup_seconds: float = 0.0  # from launch to setup: the interpreter, imports, JAX's start
  data_seconds: float = 0.0  # loading the dataset
  compile_seconds: float = 0.0
  train_seconds: float = 0.0
  evaluate_seconds: float = 0.0  # evaluations during and after training
  checkpoint_seconds: float = 0.0  # the part of checkpoint saves training waits for
  examples_trained: int = 0
  train_split: dict = dataclasses.field(default_factory=dict)  # host input, dispatch, device wait (loop.py)

  def phases(self, wall_seconds: float, seeds: int) -> dict:
    """Where a run's time went, in seconds; `other` is the model summary, records, plots and the like."""
    measured = {"before_setup": self.before_setup_seconds, "data": self.data_seconds,
                "compile": self.compile_seconds / seeds, "train": self.train_seconds / seeds,
                "evaluate": self.evaluate_seconds / seeds, "checkpoint": self.checkpoint_seconds / seeds}
    inside = sum(v for k, v in measured.items() if k != "before_setup")
    return {**measured, "other": max(0.0, wall_seconds - inside)}


@dataclasses.dataclass
class SeedRun:
  """One seed's run directory and what is written into it."""
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
  config: ml_collections.ConfigDict  # the first seed's, with auto values resolved
  choices: dict
  dataset: data.Dataset
  task: tasks.Task
  model: nn.Module
  mesh: jax.sharding.Mesh
  runs: list[SeedRun]
  loop: EpochLoop
  evaluator: Evaluator
  timing: Timing
  microbatches: int


# --- state -------------------------------------------------------------------------------------


def total_steps(config, num_examples: int) -> int:
  return config.num_epochs * batch_plan(config.batch_size, num_examples)[2]


def initial_state(config: ml_collections.ConfigDict, model: nn.Module, input_shape, num_examples: int = 1,
                  params=None) -> TrainState:
  """The state before the first step; its keys derive from `config.seed` alone.

  `params` replaces the seed's initialization with given values of the same tree (a parity test
  starting from another program's weights, a warm start); UserError when the tree differs.
  """
  keys = seed_keys(config.seed)
  variables = model.init(jax.random.wrap_key_data(keys["init"]), jnp.zeros((1, *input_shape), jnp.float32))
  variables = dict(variables)
  initialized = variables.pop("params")
  if params is not None:
    expected = jax.tree_util.tree_map(lambda a: a.shape, initialized)
    if jax.tree_util.tree_map(np.shape, params) != expected:
      raise UserError(f"the given initial params do not match {type(model).__name__}'s: expected shapes {expected}")
    initialized = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
  tx = optim.make_optimizer(config.optimizer, config.schedule, total_steps(config, num_examples))
  return TrainState.create(apply_fn=model.apply, params=initialized, tx=tx, model_state=variables,
                           rng=keys["rng"])


def _stack(states: list[TrainState]) -> TrainState:
  """The seeds' states on a leading axis; the first one's apply_fn and optimizer serve all."""
  stack = lambda *trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
  return states[0].replace(**{field: stack(*[getattr(s, field) for s in states])
                              for field in ("step", "params", "opt_state", "model_state", "rng")})


def _unstack(tree, index: int):
  return jax.tree_util.tree_map(lambda a: a[index], tree)


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
             if key.split(".")[0] not in RESUMABLE_CHANGES and saved.get(key) != wanted.get(key)]
  if changed and not config.get("allow_config_change", False):
    raise UserError(f"{workdir} holds a run with another config ({'; '.join(changed[:4])}"
                    f"{'; ...' if len(changed) > 4 else ''}); use a new --workdir, or pass "
                    f"--config.allow_config_change=True to resume it anyway")


def microbatch_count(batch_size: int, microbatch_size: int) -> int:
  """How many microbatches a step accumulates its gradient over (microbatch_size 0: one)."""
  if not microbatch_size or microbatch_size >= batch_size:
    return 1
  if batch_size % microbatch_size:
    raise UserError(f"config.microbatch_size {microbatch_size} does not divide the batch of {batch_size} examples; "
                    f"use a divisor of {batch_size}, or 0 to let the backend choose")
  return batch_size // microbatch_size


# --- setup, loop, finish -----------------------------------------------------------------------


def setup(configs: list, workdirs: list, launch: float | None = None, initial_params=None) -> Session:
  """Checks, loads the data, builds the model and state (restored where a checkpoint exists),
  and opens every seed's run directory."""
  timing = Timing(launch=launch if launch is not None else time.time(), wall_start=time.perf_counter())
  timing.before_setup_seconds = max(0.0, time.time() - timing.launch)
  base = configs[0]
  if len(configs) > 1:
    _check_vectorizable(configs)
  for config, workdir in zip(configs, workdirs):
    check_resumable(config, workdir)
  mesh = parallel.make_mesh()
  if base.batch_size:
    parallel.check_batch_size(base.batch_size, mesh)
  data_start = time.perf_counter()
  dataset = data.load(base.dataset)
  timing.data_seconds = time.perf_counter() - data_start
  train_inputs, train_targets = dataset.splits["train"]
  full_batch = batch_plan(base.batch_size, len(train_inputs))[0]
  resolved = auto.resolve(base, data_bytes=train_inputs.nbytes + train_targets.nbytes, full_batch=full_batch)
  if resolved.data_on_device == "true" and jax.process_count() > 1:
    raise UserError("config.data_on_device=true needs a single process; a multi-host run feeds each process's "
                    "block from the host (use auto or false)")
  choices = auto.choices(base, resolved)
  task = tasks.TASKS[base.loss]
  model = models.build(resolved.model, resolved.compute_dtype)
  num_examples = len(dataset.splits["train"][0])
  _, batch_size, _ = batch_plan(base.batch_size, num_examples)
  microbatches = microbatch_count(batch_size, resolved.microbatch_size)

  runs, state, progress = _open_runs(configs, workdirs, model, dataset.input_shape, num_examples, mesh,
                                     initial_params)
  try:  # from here on, every run directory records this start
    primary = parallel.is_primary()
    print_model_summary(model, dataset.input_shape)
    if microbatches > 1:
      print(f"Each step accumulates its gradient over {microbatches} microbatches of {batch_size // microbatches} "
            f"examples.")
    if progress is not None:
      print(f"Resuming from checkpoint at step {int(np.ravel(jax.device_get(state.step))[0])} "
            f"(epoch {progress['epoch']}, batch {progress.get('batch', 0)}).")
    if primary:
      for run in runs:
        records.write_config(run.workdir, run.config)
    for run in runs:
      run.status.start()

    def save(state, position: dict, metrics) -> None:
      for s, run in enumerate(runs):
        seed_state = state if len(runs) == 1 else _unstack(state, s)
        steps = int(seed_state.step)
        if run.checkpoints.latest_step() == steps:
          continue  # a seed that stopped early: its state, frozen, is saved already
        seed_position = position if len(runs) == 1 else {
            **position, "sums": position["sums"][s], "stoppers": position["stoppers"][s]}
        run.checkpoints.save(seed_state, seed_position, metrics[s] if metrics else None)
        run.status.update(steps_done=steps, epochs_done=position["epoch"], last_checkpoint_step=steps)

    train_step = make_train_step(task, type(model).rng_streams, microbatches)
    on_device = resolved.data_on_device == "true"

    def record_stuck(details: dict, message: str) -> None:  # from the watchdog's thread, on any process
      for run in runs:
        run.status.enabled = True
        run.status.update(status="stuck", stuck=details, message=message)

    watchdog = Watchdog(base.watchdog_seconds, base.watchdog_first_seconds, on_stuck=record_stuck,
                        process=f"process {jax.process_index()} of {jax.process_count()}")
    loop = EpochLoop(resolved, *dataset.splits["train"], train_step, mesh, state, progress,
                     [seed_keys(run.config.seed)["data"] for run in runs], "device" if on_device else "host",
                     resolved.steps_per_dispatch, save, profile_dir=runs[0].workdir / "profile", watchdog=watchdog)
    for run in runs:
      run.log = records.MetricsLog(run.workdir, resume_after_epoch=loop.epoch, enabled=primary)
    evaluator = Evaluator(model, task, dataset, mesh, base.eval_batch_size, on_device)
    return Session(resolved, choices, dataset, task, model, mesh, runs, loop, evaluator, timing, microbatches)
  except BaseException:
    for run in runs:
      run.close()
    raise


def _open_runs(configs, workdirs, model, input_shape, num_examples, mesh, initial_params):
  """Each seed's run directory, locked, with its state restored from its latest good checkpoint; the
  states stacked when there are several. Refuses (before anything is written) a checkpoint this config
  cannot hold and a run already trained past config.num_epochs."""
  primary = parallel.is_primary()
  replicated = parallel.replicated(mesh)
  runs, states, progresses = [], [], []
  try:
    for config, workdir in zip(configs, workdirs):
      workdir.mkdir(parents=True, exist_ok=True)
      lock = RunLock(workdir) if primary else None
      runs.append(SeedRun(config, workdir, RunStatus(workdir, enabled=primary), Checkpoints(
          workdir / "checkpoints", keep=config.keep_checkpoints, best_metric=config.checkpoint_best_metric,
          best_mode=config.checkpoint_best_mode, asynchronous=config.checkpoint_async), lock=lock))
    for run in runs:
      state = jax.device_put(initial_state(run.config, model, input_shape, num_examples, initial_params), replicated)
      reason = run.checkpoints.incompatibility(state)
      if reason:  # refused before anything is restored, moved or written
        raise UserError(f"{run.workdir}'s checkpoint cannot be resumed with this config: {reason}; use a new "
                        f"--workdir (allow_config_change allows only changes the checkpoint can hold)")
      state, progress = run.checkpoints.restore_latest_good(state, replicated)
      if progress is not None and progress["epoch"] > run.config.num_epochs:
        raise UserError(f"{run.workdir} has trained {progress['epoch']} epochs already; config.num_epochs "
                        f"{run.config.num_epochs} would leave its summary claiming fewer; ask for at least "
                        f"{progress['epoch']}, or use a new --workdir")
      states.append(state)
      progresses.append(progress)
    if len(runs) > 1 and len({json_key(p) for p in progresses}) > 1:
      # A kill between the seeds' saves: every seed goes back to the newest step they all saved.
      common = min(int(s.step) if p is not None else 0 for s, p in zip(states, progresses))
      for i, run in enumerate(runs):
        if int(states[i].step) > common:
          fresh = jax.device_put(initial_state(run.config, model, input_shape, num_examples, initial_params),
                                 replicated)
          states[i], progresses[i] = run.checkpoints.restore_latest_good(fresh, replicated, up_to=common)
    if len(runs) > 1 and len({json_key(p) for p in progresses}) > 1:
      raise CannotVectorize("the seeds' checkpoints are at different positions")
  except BaseException:
    for run in runs:
      run.close()
    raise
  if len(runs) == 1:
    return runs, states[0], progresses[0]
  progress = None if progresses[0] is None else {**progresses[0], "sums": [p["sums"] for p in progresses],
                                                 "stoppers": [p.get("stoppers") for p in progresses]}
  return runs, jax.device_put(_stack(states), replicated), progress


def json_key(progress) -> str:
  """A checkpoint position without the seed's own metric sums: equal for seeds saved together."""
  return "" if progress is None else f"{progress['epoch']}/{progress.get('batch', 0)}"


def _check_vectorizable(configs) -> None:
  base = records.config_to_dict(configs[0])
  for config in configs[1:]:
    other = records.config_to_dict(config)
    if {k: v for k, v in other.items() if k != "seed"} != {k: v for k, v in base.items() if k != "seed"}:
      raise CannotVectorize("the configs differ in more than the seed")
  if jax.device_count() > 1:
    raise CannotVectorize(f"{jax.device_count()} devices: vectorized seeds run on one device; the data-parallel "
                          f"path trains each seed across all of them instead")


def variables_of(session: Session, seed_index: int) -> dict:
  state = session.loop.state if len(session.runs) == 1 else _unstack(session.loop.state, seed_index)
  return state.variables()


def run_loop(session: Session, stop=None) -> str:
  """Trains to the config's last epoch, logging, evaluating and checkpointing on the config's cadence.
  Returns "" when done, or the signal's name when one stopped the run (saved and resumable). `stop`: an
  interrupt.StopRequest already active (the CLI's, from start-up on); else one is made for the loop."""
  config, loop, runs = session.config, session.loop, session.runs
  eval_names = [name for name in session.dataset.splits if name != "train"]
  with contextlib.ExitStack() as stack:
    stop = stop or stack.enter_context(interrupt.StopRequest())
    for rows in loop.run(stop):
      for run, seed_rows in zip(runs, rows):
        for epoch, metrics in seed_rows:
          run.log.write(epoch, "train", metrics)
      epoch, active = loop.epoch, [bool(seed_rows) for seed_rows in rows]
      evaluated = [{} for _ in runs]
      ranked = [ranked_metrics(seed_rows[-1][1], {}) if seed_rows else {} for seed_rows in rows]
      stopped_now = False
      if due(config.log_every_epochs, epoch, config.num_epochs):
        start = time.perf_counter()
        for s, run in enumerate(runs):
          if not active[s]:
            continue
          with loop.watchdog.phase("evaluation", loop.host_step):
            evaluated[s] = session.evaluator.evaluate(variables_of(session, s), eval_names)
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
            print(f"{_seed_name(runs, s)}stopped early at epoch {epoch}: {loop.stoppers[s].stopped['reason']}.")
        session.timing.evaluate_seconds += time.perf_counter() - start
        _print_epoch(config, epoch, rows, evaluated, runs)
      last = epoch == config.num_epochs or not loop.active.any()
      if due(config.checkpoint_every_epochs, epoch, config.num_epochs) or stopped_now:
        loop.save(ranked, force=last or stopped_now)
  loop.profiler.close()
  session.timing.compile_seconds = loop.compile_seconds
  session.timing.train_seconds = loop.train_seconds
  session.timing.train_split = dict(loop.split)
  session.timing.checkpoint_seconds = loop.save_seconds
  session.timing.examples_trained = loop.examples_trained
  return loop.stopped_by


def _seed_name(runs, index: int) -> str:
  return f"Seed {runs[index].config.seed} " if len(runs) > 1 else ""


def _print_epoch(config, epoch: int, rows, evaluated, runs) -> None:
  if len(runs) > 1:
    print(f"Epoch {epoch}/{config.num_epochs}: {len(runs)} seeds, train loss "
          + " ".join(f"{seed_rows[-1][1]['loss']:.4f}" if seed_rows else "(stopped)" for seed_rows in rows), flush=True)
    return
  line = f"Epoch {epoch}/{config.num_epochs}: train {format_metrics(rows[0][-1][1])}"
  for name, metrics in evaluated[0].items():
    line += f"; {name} {format_metrics(metrics)}"
  print(line, flush=True)
  target = runs[0].time_to_target
  if target and target["epoch"] == epoch:
    print(f"{target['metric']} reached {target['value']} at epoch {epoch}, "
          f"{target['seconds_from_launch']:.1f} s after launch.")


def finish(session: Session) -> list[dict]:
  """Each seed's final evaluation, plots, predictions, summary.json and status; returns the summaries."""
  timing, seeds = session.timing, len(session.runs)
  primary = parallel.is_primary()
  summaries = []
  for s, run in enumerate(session.runs):
    variables = variables_of(session, s)
    start = time.perf_counter()
    with session.loop.watchdog.phase("final evaluation", session.loop.host_step):
      final = session.evaluator.evaluate(variables, list(session.dataset.splits))
      picture_outputs = pictures.model_outputs(session.dataset, session.evaluator, variables)
    timing.evaluate_seconds += time.perf_counter() - start
    if primary:
      plots.plot_run(records.read_metrics(run.workdir), run.workdir, run.config.name or run.config.model.name,
                     session.task.curve)
      pictures.draw(run.workdir, session.dataset, picture_outputs)
    steps = int(np.ravel(jax.device_get(session.loop.state.step))[s])
    stopper = session.loop.stoppers[s]
    epochs = stopper.stopped["epoch"] if stopper.stopped else run.config.num_epochs
    summary = {
        "final": final,
        "epochs": epochs,
        "steps": steps,
        "data_seconds": timing.data_seconds,
        "compile_seconds": timing.compile_seconds / seeds,
        "train_seconds": timing.train_seconds / seeds,
        "train_examples_per_second": (timing.examples_trained / (timing.train_seconds / seeds)
                                      if timing.train_seconds else None),
        "wall_seconds": time.perf_counter() - timing.wall_start,
        "phases": timing.phases(time.perf_counter() - timing.wall_start, seeds),
        "train_split": {k: v / seeds for k, v in timing.train_split.items()},
        "microbatches": session.microbatches,
        "resolved": session.choices,
        "params_digest": tree_digest(variables["params"]),
        **environment(),
    }
    if seeds > 1:  # its seconds are the group's divided by the seeds
      summary["vectorized_seeds"] = seeds
    if session.dataset.reference_metrics:
      summary["reference"] = session.dataset.reference_metrics
    if run.time_to_target:
      summary["time_to_target"] = run.time_to_target
    summary.update(stopper.summary())
    if seeds == 1:
      for name, metrics in final.items():
        reference = session.dataset.reference_metrics.get(name, {})
        print(f"Final {name}: {format_metrics(metrics)}"
              + (f" (reference: {format_metrics(reference)})" if reference else ""))
      if "test" in final and "accuracy" in final["test"]:
        print(f"Test accuracy: {final['test']['accuracy']:.2%}")
    predictions = session.evaluator.predict(variables, run.config.predict_examples) if seeds == 1 else []
    if predictions:
      summary["predictions"] = predictions
    if primary:
      records.write_json(run.workdir / "summary.json", summary)
    run.status.update(status="done", steps_done=steps, epochs_done=epochs,
                      message=f"stopped early: {stopper.stopped['reason']}" if stopper.stopped else "")
    if seeds == 1:
      print(f"Compile {summary['compile_seconds']:.2f} s, training {summary['train_seconds']:.2f} s after "
            f"compilation, wall {summary['wall_seconds']:.2f} s. Run directory: {run.workdir}")
    summaries.append(summary)
  if seeds > 1:
    print(f"{seeds} seeds trained as one program: compile {timing.compile_seconds:.2f} s, training "
          f"{timing.train_seconds:.2f} s after compilation. Run directories: "
          + ", ".join(str(run.workdir) for run in session.runs))
  return summaries


def close(session: Session) -> None:
  for run in session.runs:
    run.close()


def train(configs: list, workdirs: list, launch: float | None = None, initial_params=None,
          stop=None) -> list[dict] | None:
  """Trains each config into its workdir (several: seeds of one config, vmapped) and returns their summaries.

  Returns None when a signal stopped the run (saved and resumable). Raises Diverged when a loss or
  gradient becomes NaN or Inf (one seed), CannotVectorize when vectorized seeds cannot go on
  together (a seed diverged, checkpoints at different positions): run them one by one then.
  `launch` is the time.time() time-to-target counts from (default: now); `stop` an active
  interrupt.StopRequest (the CLI's, so that a signal during start-up stops cleanly too).
  """
  session = setup(configs, [pathlib.Path(w) for w in workdirs], launch, initial_params)
  try:
    return _train_session(session, stop)
  finally:
    session.loop.watchdog.close()  # after finish: its final evaluation is watched too


def _train_session(session: Session, stop) -> list[dict] | None:
  try:
    stopped_by = run_loop(session, stop)
  except Diverged as e:
    if len(session.runs) > 1:
      raise CannotVectorize(f"seed {session.runs[e.seed_index].config.seed} diverged ({e})") from e
    session.runs[0].status.update(status="diverged", message=str(e))
    raise
  finally:
    with session.loop.watchdog.phase("finishing checkpoint writes", session.loop.host_step):
      close(session)
  if stopped_by:
    loop = session.loop
    message = (f"Stopped by {stopped_by} at step {loop.host_step}; checkpoint saved. "
               f"Resume by running the same command again (same --workdir).")
    for run in session.runs:
      run.status.update(status="preempted", preemptions=run.status.fields["preemptions"] + 1, message=message)
    print(message)
    if jax.process_count() > 1:  # every process's own log (stderr) says where it stopped
      print(f"process {jax.process_index()} of {jax.process_count()}: stopped at step {loop.host_step}",
            file=sys.stderr, flush=True)
    return None
  return finish(session)


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
  table = nn.tabulate(model, jax.random.key(0), compute_flops=True,
                      console_kwargs={"force_terminal": False, "no_color": True, "width": 100})
  print(table(jnp.zeros((1, *input_shape), jnp.float32)))


def environment() -> dict:
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": device.device_kind, "device_count": jax.device_count(),
          "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                       "orbax_checkpoint": orbax.checkpoint.__version__}}


def restore_for_inference(workdir: pathlib.Path):
  """(config, model, variables) of a run's latest checkpoint, without its optimizer state."""
  config = ml_collections.ConfigDict(records.read_config(workdir))
  resolved = auto.resolve(config)
  model = models.build(resolved.model, config.get("compute_dtype", "float32"))
  checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
  variables = checkpoints.restore_variables(parallel.replicated(parallel.make_mesh()))
  checkpoints.close()
  return config, model, variables
