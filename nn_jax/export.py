"""`python -m nn_jax export --workdir DIR`: the trained model as a `jax.export` function and its variables.

DIR/export/ then holds
  model.jaxexport   the model's inference function `(variables, inputs) -> outputs`, serialized by
                    jax.export (StableHLO), for any batch size (a symbolic batch dimension)
  variables.npz     its variables (params, and BatchNorm's statistics where the model has them), each
                    array under its path in the tree, "/"-joined
  model.json        the input shape and dtype, the platforms it was lowered for, where it came from,
                    and the sha256 of the two files above (load_exported refuses files that differ)
Running it needs JAX and NumPy, not this project's model code: `nn_jax.load_exported(DIR/export)`,
or the few lines in README ("Export"). ONNX and TF SavedModel copies are not written: the JAX-to-TF
path needs TensorFlow, and no maintained library converts JAX to ONNX.
"""

import hashlib
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from nn_jax import data
from nn_jax.common.errors import UserError
from nn_jax.training import trainer
from nn_jax.workdir.checkpoint import Checkpoints

FILES = ("model.jaxexport", "variables.npz", "model.json")


def export_run(workdir: pathlib.Path, platforms=None) -> pathlib.Path:
  """Writes workdir/export/ from the run's latest checkpoint; returns that folder."""
  config, model, variables = trainer.restore_for_inference(workdir)
  spec = data.spec(config.dataset.name)
  input_shape = tuple(spec.input_shape(data.fields(config.dataset)))
  variables = jax.device_get(variables)
  abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), variables)
  batch = jax.export.symbolic_shape("batch")[0]
  inputs = jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32)
  exported = jax.export.export(jax.jit(lambda v, x: model.apply(v, x)), platforms=platforms)(abstract, inputs)
  out = workdir / "export"
  out.mkdir(exist_ok=True)
  (out / "model.jaxexport").write_bytes(exported.serialize())
  np.savez(out / "variables.npz", **traverse_util.flatten_dict(variables, sep="/"))
  (out / "model.json").write_text(json.dumps({
      "input_shape": ["batch", *input_shape], "input_dtype": "float32", "platforms": list(exported.platforms),
      "config": config.name or config.model.name, "model": config.model.name, "jax": jax.__version__,
      "checkpoint_step": _latest_step(workdir), "sha256": {name: _sha256(out / name) for name in FILES[:2]}},
      indent=2) + "\n")
  return out


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _latest_step(workdir: pathlib.Path):
  checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
  step = checkpoints.latest_step()
  checkpoints.close()
  return step


def load_exported(path) -> "ExportedModel":
  """The exported model at `path` (an export folder), callable on a batch of model inputs."""
  path = pathlib.Path(path)
  missing = [name for name in FILES if not (path / name).is_file()]
  if missing:
    raise UserError(f"{path} holds no exported model (missing {', '.join(missing)}); write one with "
                    f"python -m nn_jax export --workdir RUN_DIR")
  again = "export the run again (python -m nn_jax export --workdir RUN_DIR)"
  try:
    info = json.loads((path / "model.json").read_text())
    recorded = info["sha256"]
  except (ValueError, UnicodeDecodeError, KeyError, TypeError):
    raise UserError(f"{path / 'model.json'} is damaged or records no checksums; {again}") from None
  changed = [name for name in FILES[:2] if recorded.get(name) != _sha256(path / name)]
  if changed:
    raise UserError(f"{', '.join(changed)} in {path} differ from the checksum recorded at the export (changed or "
                    f"damaged); {again}")
  return ExportedModel(path, info)


class ExportedModel:
  """`model(inputs) -> outputs` with the exported function and its stored variables."""

  def __init__(self, path: pathlib.Path, info: dict):
    self.function = jax.export.deserialize(bytearray((path / "model.jaxexport").read_bytes()))
    with np.load(path / "variables.npz") as arrays:
      self.variables = traverse_util.unflatten_dict({key: arrays[key] for key in arrays.files}, sep="/")
    self.info = info

  def __call__(self, inputs) -> np.ndarray:
    shape = tuple(self.info["input_shape"][1:])
    try:
      batch = np.asarray(inputs, np.float32)
    except (TypeError, ValueError) as e:
      raise UserError(f"the exported model takes a batch of numbers of shape (N, {', '.join(map(str, shape))}): "
                      f"{e}") from e
    if batch.shape[1:] != shape or batch.ndim != len(shape) + 1 or not len(batch):
      raise UserError(f"the exported model takes a batch of shape (N >= 1, {', '.join(map(str, shape))}), got "
                      f"{batch.shape}; add the batch axis for one example")
    return np.asarray(self.function.call(self.variables, jnp.asarray(batch)))
