"""The epoch loop: dispatches K train steps at a time over the data in (seed, epoch) order, and knows where it is.

It trains R >= 1 runs at once, always on a leading run axis. Its position
(completed epochs, batches done in the current one, and each run's metric sums
for the current epoch) is what a checkpoint stores besides
the state, so a resumed run continues at the very next batch with the same
numbers. Everything that happens between dispatches (metrics folded on the
host, the divergence guard, a stop request, a checkpoint) happens at a
dispatch boundary, and dispatches never straddle an epoch end or a checkpoint.
"""

import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from nn_jax.common import parallel
from nn_jax.common.errors import UserError
from nn_jax.training import step
from nn_jax.training.hparams import parse_profile_steps
from nn_jax.training.stopping import Stopper
from nn_jax.training.watchdog import Watchdog


class Diverged(UserError):
  """A loss or gradient norm became NaN or Inf."""

  def __init__(self, message: str):
    super().__init__(message, exit_code=1)


def seed_keys(seed: int) -> dict:
  """The run's key data, each derived from `config.seed` alone: init, data order, training-pass RNG."""
  root = jax.random.key(seed)
  return {name: jax.random.key_data(jax.random.fold_in(root, i)) for i, name in enumerate(("init", "data", "rng"))}


@jax.jit
def _epoch_order(data_key, epoch, indices):
  return jax.random.permutation(jax.random.fold_in(jax.random.wrap_key_data(data_key), epoch), indices)


def epoch_order(data_key, epoch: int, num_examples: int) -> jax.Array:
  """The data order of one epoch: a pure function of (seed's data key, epoch), so runs and resumes
  agree. Drawn by JAX on the default device, for the host path and the device path alike."""
  return _epoch_order(data_key, epoch, jnp.arange(num_examples, dtype=jnp.int32))


def batch_plan(batch_size: int, num_examples: int) -> tuple[bool, int, int]:
  """(full_batch, batch size, steps per epoch); batch_size 0 or >= the data means full batch.
  A mini-batch epoch drops the last partial batch (each epoch's permutation differs)."""
  full_batch = batch_size == 0 or batch_size >= num_examples
  batch_size = num_examples if full_batch else batch_size
  return full_batch, batch_size, num_examples // batch_size


def due(every: int, count: int, last: int) -> bool:
  """The one cadence rule: whether `count` (epochs done) is a multiple of `every` (0: never) or the last."""
  return count == last or bool(every and count % every == 0)


def ranked_metrics(train_metrics: dict, evaluated: dict) -> dict:
  """{"train/loss": ..., "test/accuracy": ...}: what a checkpoint is ranked by."""
  return {f"{split}/{k}": v for split, m in {"train": train_metrics, **evaluated}.items() for k, v in m.items()}


class EpochSums:
  """One epoch's step metrics summed in float64, one step at a time, so that where a run
  was stopped and resumed makes no difference to the epoch's mean."""

  def __init__(self, sums: dict | None = None, count: int = 0):
    self.sums = dict(sums or {})
    self.count = count

  def fold(self, step_metrics: list[dict], first_step: int, last_good_step) -> None:
    """Adds host-side metrics of consecutive steps; raises Diverged on a non-finite one."""
    for offset, metrics in enumerate(step_metrics):
      values = {k: float(v) for k, v in metrics.items()}
      if not all(math.isfinite(v) for v in values.values()):
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))
        last = f"step {last_good_step}" if last_good_step is not None else "none: no checkpoint was saved yet"
        raise Diverged(f"training diverged at step {first_step + offset + 1}: {shown}; the run is marked diverged "
                       f"and its last good checkpoint is {last}; lower config.optimizer.learning_rate and use "
                       f"a new --workdir")
      for k, v in values.items():
        self.sums[k] = self.sums.get(k, 0.0) + v
      self.count += 1

  def means(self) -> dict:
    return {k: v / self.count for k, v in self.sums.items()}

  def to_json(self) -> dict:
    return {"sums": dict(self.sums), "count": self.count}


class StepProfiler:
  """`jax.profiler` traces of the dispatches covering steps START to START+COUNT-1 into `directory`."""

  def __init__(self, steps: str, directory):
    self.window = parse_profile_steps(steps)
    self.directory = directory
    self.active = False
    self.done = False

  def before(self, first_step: int, steps: int) -> None:
    if self.window and not (self.active or self.done) and first_step + steps > self.window[0]:
      jax.profiler.start_trace(str(self.directory))
      self.active = True

  def after(self, next_step: int, state) -> None:
    if self.active and next_step >= sum(self.window):
      jax.block_until_ready(state)  # the traced steps' device work, inside the trace
      jax.profiler.stop_trace()
      self.active, self.done = False, True

  def close(self) -> None:
    if self.active:
      jax.profiler.stop_trace()
      self.active = False


class EpochLoop:
  """Trains from a position to `config.num_epochs`, yielding each finished chunk of epochs.

  `state` holds R >= 1 runs' states stacked on a leading axis, `data_keys` their data keys. `source`
  says where batches come from: "full" (the whole dataset each step), "host" (gathered by numpy, sent
  K at a time) or "device" (the training split uploaded once, gathered there). A run that diverges
  is recorded in `diverged` (run index: Diverged) and masked out while the others go on.
  """

  def __init__(self, config, inputs, targets, train_step, mesh, state, progress, data_keys, source: str,
               steps_per_dispatch: int, save_fn, profile_dir=None, watchdog=None):
    self.config = config
    self.watchdog = watchdog or Watchdog(seconds=-1, first_seconds=0)  # off unless given one
    self.inputs, self.targets = inputs, targets
    self.num_examples = len(inputs)
    self.full_batch, self.batch_size, self.steps_per_epoch = batch_plan(config.batch_size, self.num_examples)
    self.runs = len(data_keys)
    self.data_keys = jnp.stack(data_keys)
    self.state = state
    progress = progress or {}
    self.epoch = progress.get("epoch", 0)
    self.batch = progress.get("batch", 0)
    self.sums = [EpochSums(**s) for s in progress.get("sums", [{}] * self.runs)]
    self.stoppers = [Stopper.from_config(config, s) for s in progress.get("stoppers", [None] * self.runs)]
    self.active = np.array([not stopper.stopped for stopper in self.stoppers])
    steps = np.ravel(jax.device_get(state.step))
    self.host_step = int(steps[self.active].max() if self.active.any() else steps.max())  # a stopped run's stays
    self.until = config.num_epochs  # where `run` pauses
    self.diverged = {}
    self.last_saved_step = self.host_step if progress else None
    self._save_fn = save_fn
    self.stopped_by = ""
    self.compile_seconds = 0.0
    self.train_seconds = 0.0
    self.save_seconds = 0.0
    self._last_save_time = -float("inf")
    self.examples_trained = 0  # per run
    self.source = "full" if self.full_batch else source
    self.steps_per_dispatch = steps_per_dispatch
    self.mesh = mesh
    self._train_step = train_step
    self._programs = {}
    self._pending = []  # (first step, metrics still on the device) per dispatch not yet folded
    self._order = None  # the current epoch's order: on the device, or in host memory
    self._order_epoch = None
    # Where the training time goes, as far as the host sees it: gathering and sending batches, handing the
    # compiled program to the runtime, and waiting for the device's results (its compute, mostly).
    self.split = {"host_input": 0.0, "dispatch": 0.0, "device_wait": 0.0}
    self.profiler = StepProfiler(config.get("profile_steps", ""), profile_dir)
    if self.source in ("full", "device"):
      # Uploaded once, whole, to every device: a device-side batch is then exactly the host path's (the
      # same global order), and the gathered batch is split along the mesh as a host batch is.
      self.data = jax.device_put((inputs, targets), parallel.replicated(mesh))

  # --- compiled programs --------------------------------------------------------------------------

  def _program(self, steps: int):
    if steps not in self._programs:
      split = parallel.split_along_data(self.mesh) if self.mesh.devices.size > 1 else None
      program = step.make_dispatch(self._train_step, self.source, steps, self.runs, self.batch_size, split)
      replicated = parallel.replicated(self.mesh)
      in_shardings = {"full": (replicated, replicated),
                      "host": (replicated, parallel.split_along_data(self.mesh, 2)),  # (R, K, B, ...)
                      "device": (replicated, replicated, replicated, replicated)}[self.source]
      in_shardings += (replicated,)  # the active runs
      jitted = jax.jit(program, donate_argnums=0, in_shardings=in_shardings, out_shardings=replicated)
      start = time.perf_counter()
      self._programs[steps] = jitted.lower(self.state, *self._example_args(steps)).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._programs[steps]

  def bytes_needed(self) -> int:
    """The device memory the first dispatch's program takes (its arguments, outputs and temporaries, as
    XLA's memory analysis counts them), for R runs; compiling it here serves the first dispatch too."""
    steps = self._steps_left_in_chunk() if self.full_batch else self._steps_next_dispatch()
    if steps == 0:  # trained to the end already
      return 0
    stats = self._program(steps).memory_analysis()
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
            + stats.temp_size_in_bytes)

  def _example_args(self, steps: int):
    return self._inputs_example(steps) + (jnp.asarray(self.active),)

  def _inputs_example(self, steps: int):
    if self.source == "full":
      return (self.data,)
    if self.source == "device":
      return self.data, self._epoch_order(), jnp.int32(0)
    sharding = parallel.split_along_data(self.mesh, 2)
    return (jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((self.runs, steps, self.batch_size, *a.shape[1:]),
                                                                  a.dtype, sharding=sharding),
                                   (self.inputs, self.targets)),)

  def _epoch_order(self):
    """This epoch's orders, (runs, examples): on the device for the device path, in host memory for
    the host path; the same numbers either way."""
    if self._order_epoch != self.epoch:
      orders = step.over_runs(lambda key: epoch_order(key, self.epoch, self.num_examples), self.runs, (0,), 0)
      order = orders(self.data_keys)
      if self.source == "device":
        self._order = jax.device_put(order, parallel.replicated(self.mesh))
      else:
        self._order = np.asarray(jax.device_get(order))
      self._order_epoch = self.epoch
    return self._order

  def _dispatch(self, steps: int):
    """Starts `steps` train steps from the current position; returns their metrics, still on the
    device (not waited for, so the host prepares the next dispatch while these steps run)."""
    program = self._program(steps)
    with self.watchdog.phase("dispatching train steps", self.host_step):
      return self._dispatch_compiled(program, steps)

  def _dispatch_compiled(self, program, steps: int):
    self.profiler.before(self.host_step, steps)
    start = time.perf_counter()
    if self.source == "full":
      args = (self.data,)
    elif self.source == "device":
      args = (self.data, self._epoch_order(), jnp.int32(self.batch))
    else:
      order = self._epoch_order()
      window = order[:, self.batch * self.batch_size:(self.batch + steps) * self.batch_size]
      indices = window.reshape(self.runs, steps, self.batch_size)
      args = (parallel.global_batch(self.mesh, (self.inputs[indices], self.targets[indices]), 2),)
    args += (jnp.asarray(self.active),)
    prepared = time.perf_counter()
    self.state, metrics = program(self.state, *args)
    self.split["host_input"] += prepared - start
    self.split["dispatch"] += time.perf_counter() - prepared
    self.profiler.after(self.host_step + steps, self.state)
    return metrics

  def _fetch(self, metrics) -> list:
    """Dispatched metrics on the host: per run, a list of per-step dicts."""
    start = time.perf_counter()
    with self.watchdog.phase("waiting for train steps", self.host_step):  # where a stalled collective shows
      metrics = jax.device_get(metrics)  # waits for the device: what it still had to compute
    self.split["device_wait"] += time.perf_counter() - start
    steps = len(next(iter(metrics.values())))
    return [[{k: v[i, r] for k, v in metrics.items()} for i in range(steps)] for r in range(self.runs)]

  # --- position and checkpoints -------------------------------------------------------------------

  def position(self) -> dict:
    """Where the runs are: one epoch and batch, and each run's sums and stopper ("sums", "stoppers": lists)."""
    return {"epoch": self.epoch, "batch": self.batch, "sums": [s.to_json() for s in self.sums],
            "stoppers": [stopper.state() for stopper in self.stoppers]}

  def deactivate(self, run: int) -> None:
    """A run that stopped early or diverged: its state stays as it is while the others train on."""
    self.active[run] = False

  def _fold(self, run: int, sums: EpochSums, per_step: list[dict], first_step: int) -> bool:
    """Folds one run's step metrics into `sums`; a run that diverges is recorded and masked out."""
    try:
      sums.fold(per_step, first_step, self.last_saved_step)
      return True
    except Diverged as e:
      self.diverged[run] = e
      self.deactivate(run)
      return False

  def save(self, metrics: list | None = None, force: bool = False) -> None:
    """Checkpoints the current state and position, once per step and, unless `force`, at most every
    config.checkpoint_min_interval_seconds; `metrics`: one dict per run."""
    self._fold_pending()  # never save a state whose steps have not passed the divergence guard
    recent = time.perf_counter() - self._last_save_time < self.config.checkpoint_min_interval_seconds
    if self.host_step != self.last_saved_step and (force or not recent):
      start = time.perf_counter()
      with self.watchdog.phase("checkpoint save", self.host_step):
        self._save_fn(self.state, self.position(), metrics)
      self.save_seconds += time.perf_counter() - start
      self._last_save_time = time.perf_counter()
      self.last_saved_step = self.host_step

  def _fold_pending(self) -> None:
    """Folds the dispatched steps' metrics into the epoch sums, in step order (the divergence guard)."""
    for first_step, metrics, active in self._pending:
      for run, per_step in enumerate(self._fetch(metrics)):
        if active[run] and run not in self.diverged:
          self._fold(run, self.sums[run], per_step, first_step)
    self._pending = []

  # --- the loop -----------------------------------------------------------------------------------

  def run(self, stop, until: int | None = None):
    """Yields [[(epoch, train metrics), ...] per run] after each chunk of epochs; `self.state` is then
    that chunk's end state. Pauses at epoch `until` (a chunk ends there; run again to go on), returns
    early, after saving, when `stop` is requested."""
    self.until = min(until or self.config.num_epochs, self.config.num_epochs)
    while self.epoch < self.until and self.active.any():
      if stop.at_boundary():  # asked before this chunk began (during start-up, say): nothing new to save
        self.save(force=True)
        self.stopped_by = stop.reason
        return
      rows = self._full_batch_chunk() if self.full_batch else self._epoch(stop)
      if rows is None:
        return
      yield rows
      if stop.requested:
        self.save(force=True)
        self.stopped_by = stop.reason
        return

  def _steps_left_in_chunk(self) -> int:
    """Full batch: epochs until the next log or checkpoint epoch, at most steps_per_dispatch (0: no limit)."""
    config, epoch = self.config, self.epoch
    until = self.until
    for every in (config.log_every_epochs, config.checkpoint_every_epochs):
      if every:
        until = min(until, (epoch // every + 1) * every)
    count = until - epoch
    return min(count, self.steps_per_dispatch) if self.steps_per_dispatch else count

  def _full_batch_chunk(self):
    count = self._steps_left_in_chunk()
    self._program(count)  # compiled outside the timed region
    start = time.perf_counter()
    per_run = self._fetch(self._dispatch(count))
    self.train_seconds += time.perf_counter() - start
    rows = [[] for _ in range(self.runs)]
    for run, metrics in enumerate(per_run):
      if not self.active[run]:
        continue
      for i, step_metrics in enumerate(metrics):
        sums = EpochSums()  # one step is one epoch
        if not self._fold(run, sums, [step_metrics], self.host_step + i):
          rows[run] = []  # a diverged run's rows are not recorded
          break
        rows[run].append((self.epoch + i + 1, sums.means()))
    self.epoch += count
    self.host_step += count
    self.examples_trained += count * self.num_examples
    return rows

  def _steps_next_dispatch(self) -> int:
    """Steps in the next dispatch: up to steps_per_dispatch, never past the epoch's end or a step checkpoint."""
    count = self.steps_per_epoch - self.batch
    every = self.config.checkpoint_every_steps
    if every:
      count = min(count, every - self.host_step % every)
    return min(count, self.steps_per_dispatch or count)

  def _epoch(self, stop):
    """One epoch from `self.batch`; returns None when a stop request ended it early (after saving).
    Its training time excludes compilation and checkpoint writes."""
    show = self.config.progress and sys.stderr.isatty()
    bar = tqdm.tqdm(total=self.steps_per_epoch * self.batch_size, initial=self.batch * self.batch_size,
                    unit="img", unit_scale=True, leave=False, disable=not show,
                    desc=f"epoch {self.epoch + 1}/{self.config.num_epochs}")
    every = self.config.checkpoint_every_steps
    start, excluded_before = time.perf_counter(), self.compile_seconds + self.save_seconds
    while self.batch < self.steps_per_epoch:
      count = self._steps_next_dispatch()
      self._pending.append((self.host_step, self._dispatch(count), self.active.copy()))
      self.batch, self.host_step = self.batch + count, self.host_step + count
      self.examples_trained += count * self.batch_size
      bar.update(count * self.batch_size)
      stopping = stop.at_boundary()
      if stopping or (every and self.host_step % every == 0 and self.batch < self.steps_per_epoch):
        self.save(force=stopping)
        if stopping:
          break
    self._fold_pending()  # waits for the epoch's last step
    self.train_seconds += time.perf_counter() - start - (self.compile_seconds + self.save_seconds - excluded_before)
    bar.close()
    if stop.requested and self.batch < self.steps_per_epoch:
      self.stopped_by = stop.reason
      return None
    rows = [[(self.epoch + 1, sums.means())] if active else [] for sums, active in zip(self.sums, self.active)]
    self.epoch, self.batch, self.sums = self.epoch + 1, 0, [EpochSums() for _ in range(self.runs)]
    return rows
