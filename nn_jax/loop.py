"""The epoch loop: runs the jitted step over the data in (seed, epoch) order, and knows where it is.

Its position (completed epochs, batches done in the current one, and the
current epoch's metric sums) is what a checkpoint stores besides the state, so
a resumed run continues at the very next batch with the same numbers.
"""

import math
import sys
import time

import jax
import numpy as np
import tqdm

from nn_jax import parallel
from nn_jax.errors import UserError


class Diverged(UserError):
  """A loss or gradient norm became NaN or Inf."""

  def __init__(self, message: str):
    super().__init__(message, exit_code=1)


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The data order of one epoch: a pure function of (seed, epoch), so runs and resumes agree."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_plan(batch_size: int, num_examples: int) -> tuple[bool, int, int]:
  """(full_batch, batch size, steps per epoch); batch_size 0 or >= the data means full batch.
  A mini-batch epoch drops the last partial batch (each epoch's permutation differs)."""
  full_batch = batch_size == 0 or batch_size >= num_examples
  batch_size = num_examples if full_batch else batch_size
  return full_batch, batch_size, num_examples // batch_size


def is_log_epoch(config, epoch: int) -> bool:
  """Whether `epoch` (1-based) is evaluated and printed."""
  return epoch % config.log_every_epochs == 0 or epoch == config.num_epochs


def is_checkpoint_epoch(config, epoch: int) -> bool:
  return epoch == config.num_epochs or bool(config.checkpoint_every_epochs and
                                            epoch % config.checkpoint_every_epochs == 0)


def ranked_metrics(train_metrics: dict, evaluated: dict) -> dict:
  """{"train/loss": ..., "test/accuracy": ...}: what a checkpoint is ranked by."""
  return {f"{split}/{k}": v for split, m in {"train": train_metrics, **evaluated}.items() for k, v in m.items()}


def epoch_end_position(epoch: int) -> dict:
  """The position of a run that has just finished `epoch` epochs."""
  return {"epoch": epoch, "batch": 0, "sums": EpochSums().to_json()}


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
        raise Diverged(f"training diverged at step {first_step + offset + 1}: {shown}; the run is marked diverged "
                       f"and its latest checkpoint (step {last_good_step}) is the last good one; lower "
                       f"config.optimizer.learning_rate and use a new --workdir")
      for k, v in values.items():
        self.sums[k] = self.sums.get(k, 0.0) + v
      self.count += 1

  def means(self) -> dict:
    return {k: v / self.count for k, v in self.sums.items()}

  def to_json(self) -> dict:
    return {"sums": self.sums, "count": self.count}


class EpochLoop:
  """Trains from a position to `config.num_epochs`, yielding each finished chunk of epochs."""

  def __init__(self, config, dataset, train_step, mesh, state, progress, save_fn):
    self.config = config
    self.inputs, self.targets = dataset.splits["train"]
    self.num_examples = len(self.inputs)
    self.full_batch, self.batch_size, self.steps_per_epoch = batch_plan(config.batch_size, self.num_examples)
    self.state = state
    self.host_step = int(state.step)
    progress = progress or {}
    self.epoch = progress.get("epoch", 0)
    self.batch = progress.get("batch", 0)
    self.sums = EpochSums(**progress.get("sums", {}))
    self.last_saved_step = self.host_step if progress else None
    self._save_fn = save_fn
    self.stopped_by = ""
    self.compile_seconds = 0.0
    self.train_seconds = 0.0
    self.examples_trained = 0

    self.mesh = mesh
    replicated = parallel.replicated(mesh)
    if self.full_batch:  # tiny data: every device holds all of it
      self.batch_data = jax.device_put((self.inputs, self.targets), replicated)
      self._scan = jax.jit(_full_batch_epochs(train_step), static_argnums=2, donate_argnums=0,
                           out_shardings=replicated)
      self._compiled_scans = {}
    else:
      jitted = jax.jit(train_step, donate_argnums=0, in_shardings=(replicated, parallel.split_along_data(mesh)),
                       out_shardings=replicated)
      example = parallel.global_batch(mesh, (self.inputs[:self.batch_size], self.targets[:self.batch_size]))
      self.step = self._compile(jitted, state, example)

  def _compile(self, jitted, *args):
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    self.compile_seconds += time.perf_counter() - start
    return compiled

  def position(self) -> dict:
    return {"epoch": self.epoch, "batch": self.batch, "sums": self.sums.to_json()}

  def save(self, metrics: dict | None = None) -> None:
    """Checkpoints the current state and position, once per step."""
    if self.host_step != self.last_saved_step:
      self._save_fn(self.state, self.position(), metrics)
      self.last_saved_step = self.host_step

  def run(self, stop):
    """Yields [(epoch, train metrics), ...] after each chunk; `self.state` is then that chunk's end state."""
    while self.epoch < self.config.num_epochs:
      rows = self._run_full_batch_chunk() if self.full_batch else self._run_epoch(stop)
      if rows is None:
        return
      yield rows
      if stop.requested:
        self.save()
        self.stopped_by = stop.reason
        return

  def _run_full_batch_chunk(self):
    count = min(self.config.log_every_epochs, self.config.num_epochs - self.epoch)
    if count not in self._compiled_scans:
      self._compiled_scans[count] = self._compile(self._scan, self.state, self.batch_data, count)
    start = time.perf_counter()
    self.state, metrics = self._compiled_scans[count](self.state, self.batch_data)
    metrics = jax.device_get(metrics)
    self.train_seconds += time.perf_counter() - start
    rows = []
    for i in range(count):
      sums = EpochSums()
      sums.fold([{k: v[i] for k, v in metrics.items()}], self.host_step + i, self.last_saved_step)
      rows.append((self.epoch + i + 1, sums.means()))
    self.epoch += count
    self.host_step += count
    self.examples_trained += count * self.num_examples
    return rows

  def _run_epoch(self, stop):
    """One epoch from `self.batch`; returns None when a stop request ended it early (after saving)."""
    order = epoch_permutation(self.config.seed, self.epoch, self.num_examples)
    show = self.config.progress and sys.stderr.isatty()
    bar = tqdm.tqdm(total=self.steps_per_epoch * self.batch_size, initial=self.batch * self.batch_size,
                    unit="img", unit_scale=True, leave=False, disable=not show,
                    desc=f"epoch {self.epoch + 1}/{self.config.num_epochs}")
    every = self.config.checkpoint_every_steps
    pending, first_pending_step = [], self.host_step
    start = time.perf_counter()
    for batch in range(self.batch, self.steps_per_epoch):
      indices = order[batch * self.batch_size:(batch + 1) * self.batch_size]
      batch_data = parallel.global_batch(self.mesh, (self.inputs[indices], self.targets[indices]))
      self.state, metrics = self.step(self.state, batch_data)
      pending.append(metrics)
      self.batch, self.host_step = batch + 1, self.host_step + 1
      self.examples_trained += self.batch_size
      bar.update(self.batch_size)
      if stop.requested or (every and self.host_step % every == 0 and self.batch < self.steps_per_epoch):
        self.sums.fold(jax.device_get(pending), first_pending_step, self.last_saved_step)
        pending, first_pending_step = [], self.host_step
        self.save()
        if stop.requested:
          bar.close()
          self.train_seconds += time.perf_counter() - start
          self.stopped_by = stop.reason
          return None
    self.sums.fold(jax.device_get(pending), first_pending_step, self.last_saved_step)
    bar.close()
    self.train_seconds += time.perf_counter() - start
    metrics = self.sums.means()
    self.epoch, self.batch, self.sums = self.epoch + 1, 0, EpochSums()
    return [(self.epoch, metrics)]


def _full_batch_epochs(train_step):
  """`(state, batch, num_epochs) -> (state, per-epoch metrics)`: many full-batch epochs in one program."""

  def run(state, batch, num_epochs):
    return jax.lax.scan(lambda s, _: train_step(s, batch), state, None, length=num_epochs)

  return run
