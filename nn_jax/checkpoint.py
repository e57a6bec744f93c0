"""Orbax checkpoints of a run: params, optimizer state, model state (with the RNG) and the run's position.

Each is its own item, so that `predict` restores params and model state
without the optimizer state. Saves may be asynchronous (`asynchronous=True`):
orbax copies the arrays off the device and writes them while training goes
on; `wait()` (and the next save, and `close()`) waits for the write. Orbax writes each step into a temporary folder and renames it
when complete, so a run killed mid-write leaves the previous step as the latest
(tests/fault_tolerance_test.py kills one inside that window to check).
Restoring places every array with the sharding asked for, so a checkpoint
written on N devices restores on M.
"""

import pathlib
import shutil

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from nn_jax import parallel
from nn_jax.errors import UserError


class Checkpoints:
  """The checkpoints under one run directory, kept as the last `keep` plus the best by a metric."""

  def __init__(self, directory: pathlib.Path, keep: int = 3, best_metric: str = "", best_mode: str = "max",
               read_only: bool = False, asynchronous: bool = False):
    self.directory = directory.absolute()
    self.asynchronous = asynchronous
    self.best_metric = best_metric
    policies = [checkpoint_managers.LatestN(n=keep)]
    metric_of = (lambda metrics: metrics[best_metric]) if best_metric else None
    if best_metric:
      policies.append(checkpoint_managers.BestN(get_metric_fn=metric_of, reverse=best_mode == "min", n=1,
                                                keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        create=not read_only, read_only=read_only, enable_async_checkpointing=asynchronous,
        best_fn=metric_of, best_mode=best_mode,  # orbax records a save's metrics only when given a best_fn
        cleanup_tmp_directories=not read_only,  # a write that a kill interrupted is never read
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies))
    handlers = {"params": ocp.StandardCheckpointHandler(), "opt_state": ocp.StandardCheckpointHandler(),
                "model_state": ocp.StandardCheckpointHandler(),
                "progress": ocp.JsonCheckpointHandler()}  # named up front, so metadata reads before any restore
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state, progress: dict, metrics: dict | None = None) -> None:
    """Saves at `state.step`; `progress` is a small JSON dict (epoch, batch, ...). Returns once the
    arrays are copied off the device; with `asynchronous`, before they are on disk (see `wait`)."""
    if metrics is not None and self.best_metric not in metrics:
      metrics = None  # a mid-epoch save has no evaluation to rank it by
    self.manager.save(int(state.step), metrics=metrics, args=ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        opt_state=ocp.args.StandardSave(state.opt_state),
        model_state=ocp.args.StandardSave(_model_state_item(state)),
        progress=ocp.args.JsonSave(progress)))
    if not self.asynchronous:
      self.wait()

  def wait(self) -> None:
    """Returns once every save so far is complete on disk."""
    self.manager.wait_until_finished()

  def restore_latest_good(self, state, sharding):
    """(state, progress) from the newest readable checkpoint, or (state, None) when there is none.

    An unreadable checkpoint (truncated, garbled) is moved aside to
    `corrupt_checkpoints/` with a warning, and the one before it is tried; when
    none is readable the run stops rather than silently start over.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    for step in steps:
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(parallel.abstract_like(state.params, sharding)),
            opt_state=ocp.args.StandardRestore(parallel.abstract_like(state.opt_state, sharding)),
            model_state=ocp.args.StandardRestore(parallel.abstract_like(_model_state_item(state), sharding)),
            progress=ocp.args.JsonRestore()))
      except Exception as e:  # orbax and tensorstore raise many kinds; any means unreadable
        self._set_aside(step, e)
        continue
      model_state = dict(restored.model_state)
      rng = model_state.pop("rng")
      return state.replace(step=step, params=restored.params, opt_state=restored.opt_state,
                           model_state=model_state, rng=rng), restored.progress
    if steps:
      raise UserError(f"none of the checkpoints under {self.directory} is readable (moved to "
                      f"{self.directory.parent / 'corrupt_checkpoints'}); to start this run over, remove "
                      f"{self.directory.parent} or use a new --workdir", exit_code=1)
    return state, None

  def _set_aside(self, step: int, error: Exception) -> None:
    corrupt = self.directory.parent / "corrupt_checkpoints"
    if parallel.is_primary():  # the other processes of a multi-host run skip it too, and move nothing
      corrupt.mkdir(exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(corrupt / str(step)))
    self.manager.reload()
    print(f"Warning: checkpoint {step} is unreadable ({type(error).__name__}: {str(error).splitlines()[0][:120]}); "
          f"moved it to {corrupt / str(step)} and falling back to the one before.", flush=True)

  def restore_variables(self, sharding) -> dict:
    """The latest checkpoint's model variables ({"params": ..., and any model state such as
    "batch_stats"}), placed with `sharding`, without the optimizer state."""
    step = self.latest_step()
    if step is None:
      raise UserError(f"no checkpoint under {self.directory}; train first with --workdir pointing here")
    try:
      metadata = self.manager.item_metadata(step)
      abstract = {name: parallel.abstract_like(getattr(metadata[name], "tree", metadata[name]), sharding)
                  for name in ("params", "model_state")}
      restored = self.manager.restore(step, args=ocp.args.Composite(
          **{name: ocp.args.StandardRestore(tree) for name, tree in abstract.items()}))
      model_state = {k: v for k, v in restored.model_state.items() if k != "rng"}
      return {"params": restored.params, **model_state}
    except Exception as e:
      raise UserError(f"checkpoint {step} under {self.directory} cannot be read ({type(e).__name__}); "
                      f"train again, or delete that step's folder to use an earlier one", exit_code=1) from e

  def close(self) -> None:
    self.manager.close()  # waits for a write in flight


def _model_state_item(state) -> dict:
  """The run's RNG key and the model's mutable collections, saved as one item (never empty)."""
  return {"rng": state.rng, **state.model_state}
