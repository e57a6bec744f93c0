"""The Python API, for notebooks: `nn_jax.train(...)` returns what a run produced; errors raise.

  import nn_jax
  result = nn_jax.train("experiments/cnn_mnist.py", "runs/nb_cnn", num_epochs=1)
  result.summary["final"]["test"], result.history[:3], result.predict(images)

Keyword arguments override the config as `--config.KEY=VALUE` does (dotted keys through a dict:
`**{"dataset.train_examples": 400}`); a bad one raises nn_jax.UserError before any work, as the CLI
refuses it. Determinism on GPU (`deterministic`) takes effect only if JAX has not started yet in the
process: in a notebook, set it before the first JAX call (nn_jax.cli.use_deterministic_ops).
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from nn_jax import config as config_lib
from nn_jax import data
from nn_jax.common import parallel
from nn_jax.common.errors import UserError
from nn_jax.training import tasks, trainer
from nn_jax.training.evaluation import Evaluator
from nn_jax.workdir import records


@dataclasses.dataclass
class Result:
  """A finished (or stopped) run: its summary, its metrics history and its directory."""
  workdir: pathlib.Path
  summary: dict | None  # None when a signal stopped the run
  history: list[dict]  # metrics.jsonl's rows: {"epoch", "split", metric: value, ...}
  _restored: tuple | None = None  # (config, model, variables) of the latest checkpoint

  def _restore(self) -> tuple:
    if self._restored is None:
      self._restored = trainer.restore_for_inference(self.workdir)
    return self._restored

  def predict(self, inputs) -> np.ndarray:
    """The model's outputs (logits or scaled values) for a batch of model inputs, from the latest checkpoint."""
    config, model, variables = self._restore()
    shape = tuple(data.spec(config.dataset.name).input_shape(data.fields(config.dataset)))
    try:
      batch = np.asarray(inputs, np.float32)
    except (TypeError, ValueError) as e:
      raise UserError(f"predict takes a batch of numbers of shape (N, {', '.join(map(str, shape))}): {e}") from e
    if batch.ndim != len(shape) + 1 or batch.shape[1:] != shape or not len(batch):
      raise UserError(f"predict takes a batch of shape (N >= 1, {', '.join(map(str, shape))}), got "
                      f"{batch.shape}; add the batch axis for one example")
    return np.asarray(jax.jit(model.apply)(variables, jnp.asarray(batch)))

  def predict_raw(self, raw_inputs) -> np.ndarray:
    """Predictions in the target's units for raw inputs as a user types them (flat-feature datasets:
    the dataset is loaded for its scaling)."""
    config, model, variables = self._restore()
    evaluator = Evaluator(model, tasks.TASKS[config.loss], data.load(config.dataset), parallel.make_mesh(),
                          config.eval_batch_size, on_device=False)
    return np.asarray(evaluator.predict_values(variables, raw_inputs)).reshape(len(raw_inputs), -1)


def train(config: str, workdir, **overrides) -> Result:
  """Trains `config` (`path.py[:variant]`) into `workdir` (resuming it) with `overrides`; its Result."""
  loaded = config_lib.load(config, overrides)
  workdir = config_lib.workdir(workdir)
  summary = trainer.train_and_evaluate(loaded, workdir)
  return Result(workdir, summary, records.read_metrics(workdir))


def load(workdir) -> Result:
  """An earlier run's Result, from its directory."""
  workdir = config_lib.workdir(workdir, must_exist=True)
  return Result(workdir, records.read_summary(workdir), records.read_metrics(workdir))
