"""Orbax checkpoints of a run: params, optimizer state and the run's position, saved apart.

Params are their own item so that `predict` restores them without the
optimizer state. Orbax writes each step into a temporary folder and renames it
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
               read_only: bool = False):
    self.directory = directory.absolute()
    self.best_metric = best_metric
    policies = [checkpoint_managers.LatestN(n=keep)]
    metric_of = (lambda metrics: metrics[best_metric]) if best_metric else None
    if best_metric:
      policies.append(checkpoint_managers.BestN(get_metric_fn=metric_of, reverse=best_mode == "min", n=1,
                                                keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        create=not read_only, read_only=read_only, enable_async_checkpointing=False,
        best_fn=metric_of, best_mode=best_mode,  # orbax records a save's metrics only when given a best_fn
        cleanup_tmp_directories=not read_only,  # a write that a kill interrupted is never read
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies))
    handlers = {"params": ocp.StandardCheckpointHandler(), "opt_state": ocp.StandardCheckpointHandler(),
                "progress": ocp.JsonCheckpointHandler()}  # named up front, so metadata reads before any restore
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state, progress: dict, metrics: dict | None = None) -> None:
    """Saves at `state.step`; `progress` is a small JSON dict (epoch, batch, ...)."""
    if metrics is not None and self.best_metric not in metrics:
      metrics = None  # a mid-epoch save has no evaluation to rank it by
    self.manager.save(int(state.step), metrics=metrics, args=ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        opt_state=ocp.args.StandardSave(state.opt_state),
        progress=ocp.args.JsonSave(progress)))
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
            progress=ocp.args.JsonRestore()))
      except Exception as e:  # orbax and tensorstore raise many kinds; any means unreadable
        self._set_aside(step, e)
        continue
      return state.replace(step=step, params=restored.params, opt_state=restored.opt_state), restored.progress
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

  def restore_params(self, sharding):
    """The latest checkpoint's params, placed with `sharding`, without the optimizer state."""
    step = self.latest_step()
    if step is None:
      raise UserError(f"no checkpoint under {self.directory}; train first with --workdir pointing here")
    try:
      metadata = self.manager.item_metadata(step)["params"]
      abstract = parallel.abstract_like(getattr(metadata, "tree", metadata), sharding)
      return self.manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))).params
    except Exception as e:
      raise UserError(f"checkpoint {step} under {self.directory} cannot be read ({type(e).__name__}); "
                      f"train again, or delete that step's folder to use an earlier one", exit_code=1) from e

  def close(self) -> None:
    self.manager.close()
