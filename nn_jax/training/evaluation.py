"""Evaluation and prediction: one compiled call per split, in inference mode.

A split is padded to whole batches of one fixed size (a multiple of the device
count) and the model runs over them in one program (`lax.map`), so a split
costs one dispatch, for all the runs of a program at once (their variables
stacked on the run axis, as the train state holds them), one run after
another, so that each run computes exactly what it computes alone, with its
own kernels (docs/performance.md). The padding is sliced off, so every
example counts exactly once. The padded splits are uploaded once
when the data lives on the device, else sent with each call; the program and
so the numbers are the same.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from nn_jax.common import parallel
from nn_jax.data.dataset import Dataset
from nn_jax.training import step, tasks


def pad_to_batches(inputs: np.ndarray, batch_size: int) -> np.ndarray:
  """(N, ...) -> (ceil(N / B), B, ...), zero-padded at the end."""
  count = -(-len(inputs) // batch_size)
  padded = np.zeros((count * batch_size, *inputs.shape[1:]), inputs.dtype)
  padded[:len(inputs)] = inputs
  return padded.reshape(count, batch_size, *inputs.shape[1:])


class Evaluator:
  """Metrics of every evaluated split, and predictions for raw inputs, for given model variables."""

  def __init__(self, model, task: tasks.Task, dataset: Dataset, mesh, batch_size: int, on_device: bool):
    self.task, self.dataset, self.mesh = task, dataset, mesh
    self.batch_size = batch_size
    self.devices = mesh.devices.size
    self.on_device = on_device
    self._predict = step.make_predict(model)
    self._programs = {}  # runs -> the compiled prediction of that many runs
    self._splits = {}
    for name, (inputs, targets) in dataset.splits.items():
      batches = self._batches(inputs)
      self._splits[name] = (self._place(batches) if on_device else batches, len(inputs), targets)

  def _batches(self, inputs: np.ndarray) -> np.ndarray:
    size = parallel.round_up(min(self.batch_size, len(inputs)), self.devices)
    return pad_to_batches(inputs, size)

  def _place(self, batches: np.ndarray):
    return parallel.global_batch(self.mesh, batches, batch_axis=1)

  def _program(self, runs: int):
    if runs not in self._programs:
      predict_batches = lambda variables, batches: jax.lax.map(lambda x: self._predict(variables, x), batches)
      each_run = lambda variables, batches: jax.lax.map(lambda v: predict_batches(v, batches), variables)
      self._programs[runs] = jax.jit(each_run,
                                     in_shardings=(parallel.replicated(self.mesh),
                                                   parallel.split_along_data(self.mesh, 1)),
                                     out_shardings=parallel.replicated(self.mesh))
    return self._programs[runs]

  def run_outputs(self, variables, batches, count: int) -> np.ndarray:
    """(runs, count, ...): the outputs of each run (`variables` stacked on the run axis)."""
    runs = len(jax.tree_util.tree_leaves(variables)[0])
    placed = batches if isinstance(batches, jax.Array) else self._place(batches)
    outputs = np.asarray(jax.device_get(self._program(runs)(variables, placed)))
    return outputs.reshape(runs, -1, *outputs.shape[3:])[:, :count]

  def outputs(self, variables, batches, count: int) -> np.ndarray:
    """One run's outputs: a run axis of one."""
    return self.run_outputs(jax.tree_util.tree_map(lambda a: a[None], variables), batches, count)[0]

  def evaluate_runs(self, variables, names) -> list[dict]:
    """[{split name: its metrics}, ...] for each run of `variables` (stacked on the run axis)."""
    results = [{} for _ in jax.tree_util.tree_leaves(variables)[0]]
    for name in names:
      batches, count, targets = self._splits[name]
      for result, outputs in zip(results, self.run_outputs(variables, batches, count)):
        metrics = {k: float(v) for k, v in self.task.metrics(jnp.asarray(outputs), jnp.asarray(targets)).items()}
        metrics.update(self.task.split_metrics(outputs, targets, self.dataset.target_scale))
        result[name] = metrics
    return results

  def evaluate(self, variables, names) -> dict:
    """{split name: its metrics} for one run's variables."""
    return self.evaluate_runs(jax.tree_util.tree_map(lambda a: a[None], variables), names)[0]

  def split_outputs(self, variables, name: str) -> np.ndarray:
    """The model's outputs for every example of split `name`."""
    batches, count, _ = self._splits[name]
    return self.outputs(variables, batches, count)

  def predict_values(self, variables, raw_inputs) -> np.ndarray:
    """Predictions for raw inputs (in the user's units), in the target's units."""
    raw = np.asarray(raw_inputs, np.float64)
    encoded = self.dataset.encode_inputs(raw)
    return self.dataset.decode_outputs(self.outputs(variables, self._batches(encoded), len(raw)))

  def predict(self, variables, raw_inputs) -> list[dict]:
    """Predicts raw inputs (in the user's units), prints each and returns them as records."""
    if len(raw_inputs) == 0:
      return []
    raw = np.asarray(raw_inputs, np.float64)
    not_finite = [inputs.tolist() for inputs in raw.reshape(len(raw), -1) if not np.isfinite(inputs).all()]
    if not_finite:
      print(f"Warning: inputs {', '.join(map(str, not_finite))} are not finite numbers (NaN, inf or beyond "
            f"float64); their predictions mean nothing", file=sys.stderr, flush=True)
    values = self.predict_values(variables, raw)
    results = []
    for inputs, value in zip(raw, values.reshape(len(raw), -1)):
      print(self.dataset.describe_prediction(inputs, float(value[0])))
      results.append({"input": inputs.tolist(), "prediction": float(value[0])})
    return results
