"""Orbax checkpoints of a run: params, optimizer state, model state (with the RNG) and the run's position.

Each is its own item, so that `predict` restores params and model state
without the optimizer state. Every save also records sha256 digests of each
item, shard by shard, the metrics that rank it included (`digests`, hashed off
the training thread: nn_jax/workdir/checkpoint_digests.py); a restore recomputes them,
so a checkpoint whose stored bytes changed (a flipped bit that still decodes)
counts as unreadable, exactly like a truncated one or one without digests: set
aside with a warning naming the step, the one before used.

Saves may be asynchronous (`asynchronous=True`): orbax copies the arrays off
the device and writes them while training goes on; `wait()` (and the next save,
and `close()`) waits for the write. Orbax writes each step into a temporary
folder and renames it when complete, so a run killed mid-write leaves the
previous step as the latest (tests/fault_tolerance_test.py kills one inside
that window to check). Restoring places every array with the sharding asked
for, so a checkpoint written on N devices restores on M.
"""

import json
import pathlib
import shutil
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from nn_jax.common import metrics, parallel
from nn_jax.common.errors import UserError
from nn_jax.workdir.checkpoint_digests import (ChecksumMismatch, DigestsHandler, DigestsRestore, DigestsSave,
                                               host_copies, json_digest, verify)


class Checkpoints:
  """The checkpoints under one run directory, kept as the last `keep` plus the best by a metric."""

  def __init__(self, directory: pathlib.Path, keep: int = 3, best_metric: str = "", best_mode: str = "auto",
               read_only: bool = False, asynchronous: bool = False):
    self.directory = directory.absolute()
    best_mode = metrics.mode(best_metric, best_mode) if best_metric else "max"
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
                "model_state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler(),
                "digests": DigestsHandler()}  # named up front, so metadata reads before any restore
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    except ValueError:  # orbax reads every step's metrics when it opens: one of them does not parse
      if read_only:
        raise UserError(f"a checkpoint's metrics under {self.directory} do not parse; train again to set it "
                        f"aside, or delete that step's folder", exit_code=1) from None
      for step in self._steps_with_unparsable_metrics():
        self._move_aside(step, "its metrics item does not parse")
      self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state, progress: dict, metrics: dict | None = None) -> None:
    """Saves at `state.step`; `progress` is a small JSON dict (epoch, batch, ...). Returns once the
    arrays are copied off the device; with `asynchronous`, before they are on disk (see `wait`)."""
    if metrics is not None and self.best_metric not in metrics:
      metrics = None  # a mid-epoch save has no evaluation to rank it by
    progress = json.loads(json.dumps(progress))  # a snapshot: an asynchronous write must not see later changes
    items = {"params": state.params, "opt_state": state.opt_state, "model_state": _model_state_item(state)}
    json_items = {"progress": progress} | ({"metrics": metrics} if metrics is not None else {})
    digests = DigestsSave(host_copies(items), {name: json_digest(obj) for name, obj in json_items.items()})
    self.manager.save(int(state.step), metrics=metrics, args=ocp.args.Composite(
        **{name: ocp.args.StandardSave(tree) for name, tree in items.items()},
        progress=ocp.args.JsonSave(progress), digests=digests))
    if not self.asynchronous:
      self.wait()

  def wait(self) -> None:
    """Returns once every save so far is complete on disk."""
    self.manager.wait_until_finished()

  def incompatibility(self, state) -> str:
    """Why the latest checkpoint cannot hold `state` (another optimizer, another model shape), or ""."""
    step = self.latest_step()
    if step is None:
      return ""
    try:
      metadata = self.manager.item_metadata(step)
      stored = {name: _shapes(getattr(metadata[name], "tree", metadata[name]))
                for name in ("params", "opt_state", "model_state")}
    except Exception:  # unreadable metadata: restore_latest_good sets that checkpoint aside
      return ""
    wanted = {"params": _shapes(state.params), "opt_state": _shapes(state.opt_state),
              "model_state": _shapes(_model_state_item(state))}
    for name in wanted:
      if stored[name] != wanted[name]:
        return (f"its {name} holds {len(stored[name])} arrays of other shapes than this config's {len(wanted[name])}: "
                f"another optimizer or model shape")
    return ""

  def restore_latest_good(self, state, sharding, up_to: int | None = None):
    """(state, progress) from the newest readable checkpoint (at most step `up_to`), or (state, None)
    when there is none.

    An unreadable checkpoint (truncated, garbled) is moved aside to
    `corrupt_checkpoints/` with a warning, and the one before it is tried; when
    none is readable the run stops rather than silently start over.
    """
    steps = sorted((s for s in self.manager.all_steps() if up_to is None or s <= up_to), reverse=True)
    corrupt = self.directory.parent / "corrupt_checkpoints"
    if not steps and corrupt.is_dir() and any(corrupt.iterdir()):
      raise UserError(f"every checkpoint of this run was unreadable and set aside in {corrupt}; to start the run "
                      f"over, remove {self.directory.parent} or use a new --workdir", exit_code=1)
    for step in steps:
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(parallel.abstract_like(state.params, sharding)),
            opt_state=ocp.args.StandardRestore(parallel.abstract_like(state.opt_state, sharding)),
            model_state=ocp.args.StandardRestore(parallel.abstract_like(_model_state_item(state), sharding)),
            progress=ocp.args.JsonRestore()))
        self._verify(step, {"params": restored.params, "opt_state": restored.opt_state,
                            "model_state": restored.model_state}, restored.progress)
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

  def _verify(self, step: int, trees: dict, progress=None) -> None:
    """Raises ChecksumMismatch unless every restored item has the digest recorded at its save."""
    if not (self.directory / str(step) / "digests").exists():
      raise ChecksumMismatch("its digests item is missing, so nothing in it can be verified")
    recorded = self.manager.restore(step, args=ocp.args.Composite(digests=DigestsRestore())).digests
    json_items = {"progress": progress} if progress is not None else {}
    metrics = self.manager.metrics(step)
    if metrics is not None or "metrics" in recorded:
      json_items["metrics"] = metrics
    verify(recorded, trees, json_items)

  def _set_aside(self, step: int, error: Exception) -> None:
    self._move_aside(step, f"{type(error).__name__}: {str(error).splitlines()[0][:120]}")
    self.manager.reload()

  def _move_aside(self, step: int, reason: str) -> None:
    corrupt = self.directory.parent / "corrupt_checkpoints"
    if parallel.is_primary():  # the other processes of a multi-host run skip it too, and move nothing
      corrupt.mkdir(exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(corrupt / str(step)))
    print(f"Warning: checkpoint {step} is unreadable ({reason}); moved it to {corrupt / str(step)} and falling "
          f"back to the one before.", file=sys.stderr, flush=True)

  def _steps_with_unparsable_metrics(self) -> list[int]:
    unparsable = []
    for path in self.directory.glob("*/metrics/metrics"):  # orbax's file of a step's metrics
      try:
        json.loads(path.read_bytes())
      except ValueError:
        unparsable.append(int(path.parent.parent.name))
    return unparsable

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
      self._verify(step, {"params": restored.params, "model_state": restored.model_state})
      model_state = {k: v for k, v in restored.model_state.items() if k != "rng"}
      return {"params": restored.params, **model_state}
    except ChecksumMismatch as e:
      raise UserError(f"checkpoint {step} under {self.directory} fails its checksum ({e}): its files were changed "
                      f"or damaged; train again, or delete that step's folder to use an earlier one", exit_code=1) from e
    except Exception as e:
      raise UserError(f"checkpoint {step} under {self.directory} cannot be read ({type(e).__name__}); "
                      f"train again, or delete that step's folder to use an earlier one", exit_code=1) from e

  def close(self) -> None:
    self.manager.close()  # waits for a write in flight


def _shapes(tree) -> list:
  """The sorted (shape, dtype) of every array of a tree of arrays or of orbax's array metadata (orbax names
  containers its own way, so the paths are left out)."""
  leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))
  return sorted((tuple(leaf.shape), str(np.dtype(leaf.dtype))) for leaf in leaves)


def _model_state_item(state) -> dict:
  """The run's RNG key and the model's mutable collections, saved as one item (never empty)."""
  return {"rng": state.rng, **state.model_state}
