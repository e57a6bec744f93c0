"""Orbax checkpoints of a run: params, optimizer state and the run's position, saved apart.

Params are their own item so that `predict`/`evaluate` restore them without
the optimizer state. Orbax writes each step into a temporary folder and renames
it when complete, so a run killed mid-write leaves the previous step as latest.
"""

import pathlib

import jax
import orbax.checkpoint as ocp

from nn_jax.errors import UserError


class Checkpoints:
  """The checkpoints under one run directory."""

  def __init__(self, directory: pathlib.Path, keep: int = 3, read_only: bool = False):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=False)
    self.manager = ocp.CheckpointManager(
        directory.absolute(), options=options, item_names=("params", "opt_state", "progress"))

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state, progress: dict) -> None:
    """Saves at `state.step`; `progress` is a small JSON dict (epoch, ...)."""
    self.manager.save(int(state.step), args=ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        opt_state=ocp.args.StandardSave(state.opt_state),
        progress=ocp.args.JsonSave(progress)))
    self.manager.wait_until_finished()

  def restore(self, state):
    """Returns (state, progress) from the latest checkpoint, shaped like `state`."""
    step = self.latest_step()
    restored = self._restore(step, params=ocp.args.StandardRestore(_abstract(state.params)),
                             opt_state=ocp.args.StandardRestore(_abstract(state.opt_state)),
                             progress=ocp.args.JsonRestore())
    state = state.replace(step=step, params=restored.params, opt_state=restored.opt_state)
    return state, restored.progress

  def restore_params(self):
    """The latest checkpoint's params as saved, without the optimizer state."""
    step = self.latest_step()
    if step is None:
      raise UserError(f"no checkpoint under {self.manager.directory}; train first with --workdir pointing here")
    return self._restore(step, params=ocp.args.StandardRestore()).params

  def _restore(self, step, **items):
    try:
      return self.manager.restore(step, args=ocp.args.Composite(**items))
    except (ValueError, FileNotFoundError, OSError) as e:
      raise UserError(f"checkpoint {step} under {self.manager.directory} cannot be read ({type(e).__name__}); "
                      f"delete that step folder to fall back to an earlier one", exit_code=1) from e

  def close(self) -> None:
    self.manager.close()


def _abstract(tree):
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)
