"""The one trainer: train state, the pure jitted train step, evaluation and the epoch loop.

Every model and dataset goes through `train_and_evaluate(config, workdir)`.
Full-batch training (batch_size 0, as the house MLP) runs `log_every_epochs`
epochs per call as one compiled `lax.scan`; mini-batch training loops over the
jitted step in Python, which measured faster than a scanned epoch on XLA:CPU.
"""

import functools
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
import tqdm
from flax.training import train_state

from nn_jax import data, models, plots, records, tasks
from nn_jax.checkpoint import Checkpoints
from nn_jax.data.dataset import Dataset


def make_optimizer(optimizer_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  makers = {"sgd": optax.sgd, "adam": optax.adam}
  return makers[optimizer_config.name](optimizer_config.learning_rate)


def init_params(model: nn.Module, input_shape, key: jax.Array):
  return model.init(key, jnp.zeros((1, *input_shape), jnp.float32))["params"]


def create_train_state(model: nn.Module, tx, input_shape, key: jax.Array) -> train_state.TrainState:
  return train_state.TrainState.create(apply_fn=model.apply, params=init_params(model, input_shape, key), tx=tx)


def initial_state(config: ml_collections.ConfigDict, model: nn.Module, input_shape) -> train_state.TrainState:
  """The state before the first step; its keys derive from `config.seed` alone."""
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  return create_train_state(model, make_optimizer(config.optimizer), input_shape, init_key)


def make_train_step(task: tasks.Task):
  """Returns the pure `(state, batch) -> (state, metrics)`; metrics are of the params before the update."""

  def train_step(state, batch):
    inputs, targets = batch

    def loss_fn(params):
      outputs = state.apply_fn({"params": params}, inputs)
      return task.loss(outputs, targets), outputs

    grads, outputs = jax.grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), task.metrics(outputs, targets)

  return train_step


def make_full_batch_epochs(train_step):
  """`(state, batch, num_epochs) -> (state, per-epoch metrics)`: many full-batch epochs in one program."""

  def run(state, batch, num_epochs):
    return jax.lax.scan(lambda s, _: train_step(s, batch), state, None, length=num_epochs)

  return run


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The data order of one epoch: a pure function of (seed, epoch), so runs and resumes agree."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def predict_outputs(predict_fn, params, inputs: np.ndarray, batch_size: int) -> np.ndarray:
  """Model outputs for every input. The last batch is padded to a full one, so one
  compiled shape serves all, and the padding is sliced off: every example counts once."""
  n = len(inputs)
  if n <= batch_size:
    return np.asarray(predict_fn(params, inputs))
  outputs = []
  for start in range(0, n, batch_size):
    chunk = inputs[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    outputs.append(np.asarray(predict_fn(params, padded))[:len(chunk)])
  return np.concatenate(outputs)


def evaluate(predict_fn, params, split, task: tasks.Task, batch_size: int, target_scale: float) -> dict:
  inputs, targets = split
  outputs = predict_outputs(predict_fn, params, inputs, batch_size)
  metrics = {k: float(v) for k, v in task.metrics(jnp.asarray(outputs), jnp.asarray(targets)).items()}
  metrics.update(task.split_metrics(outputs, targets, target_scale))
  return metrics


def _mean_metrics(step_metrics) -> dict:
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *step_metrics)
  return {k: float(v) for k, v in jax.device_get(jax.tree_util.tree_map(jnp.mean, stacked)).items()}


def _format(metrics: dict) -> str:
  ordered = sorted(metrics.items(), key=lambda item: item[0] != "loss")  # loss first
  return ", ".join(f"{k} {v:.2%}" if k == "accuracy" else f"{k} {v:.4f}" for k, v in ordered)


class _EpochRunner:
  """Runs a number of epochs from a given epoch; owns the compiled programs and their compile time."""

  def __init__(self, config, dataset: Dataset, task: tasks.Task, state):
    self.config = config
    self.inputs, self.targets = dataset.splits["train"]
    self.num_examples = len(self.inputs)
    self.full_batch = config.batch_size == 0 or config.batch_size >= self.num_examples
    self.batch_size = self.num_examples if self.full_batch else config.batch_size
    self.steps_per_epoch = 1 if self.full_batch else self.num_examples // self.batch_size
    self.compile_seconds = 0.0
    train_step = make_train_step(task)
    batch = (self.inputs[:self.batch_size], self.targets[:self.batch_size])
    if self.full_batch:
      self._scan = jax.jit(make_full_batch_epochs(train_step), static_argnums=2, donate_argnums=0)
      self._compiled_scans = {}
      self.batch = jax.device_put(batch)
    else:
      self.step = self._compile(jax.jit(train_step, donate_argnums=0), state, batch)

  def _compile(self, jitted, *args):
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    self.compile_seconds += time.perf_counter() - start
    return compiled

  def run(self, state, first_epoch: int, num_epochs: int):
    """Returns (state, [train metrics of each epoch])."""
    if self.full_batch:
      if num_epochs not in self._compiled_scans:
        self._compiled_scans[num_epochs] = self._compile(self._scan, state, self.batch, num_epochs)
      state, metrics = self._compiled_scans[num_epochs](state, self.batch)
      metrics = jax.device_get(metrics)
      return state, [{k: float(v[i]) for k, v in metrics.items()} for i in range(num_epochs)]
    per_epoch = []
    for epoch in range(first_epoch, first_epoch + num_epochs):
      state, metrics = self._run_epoch(state, epoch)
      per_epoch.append(metrics)
    return state, per_epoch

  def _run_epoch(self, state, epoch: int):
    order = epoch_permutation(self.config.seed, epoch, self.num_examples)
    show = self.config.progress and sys.stderr.isatty()
    bar = tqdm.tqdm(total=self.steps_per_epoch * self.batch_size, unit="img", unit_scale=True, leave=False,
                    desc=f"epoch {epoch + 1}/{self.config.num_epochs}", disable=not show)
    step_metrics = []
    for step in range(self.steps_per_epoch):
      indices = order[step * self.batch_size:(step + 1) * self.batch_size]
      state, metrics = self.step(state, (self.inputs[indices], self.targets[indices]))
      step_metrics.append(metrics)
      bar.update(self.batch_size)
    bar.close()
    return state, _mean_metrics(step_metrics)


def print_model_summary(model: nn.Module, input_shape) -> None:
  table = nn.tabulate(model, jax.random.key(0), compute_flops=True,
                      console_kwargs={"force_terminal": False, "no_color": True, "width": 100})
  print(table(jnp.zeros((1, *input_shape), jnp.float32)))


def environment() -> dict:
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": device.device_kind, "device_count": jax.device_count(),
          "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                       "orbax_checkpoint": orbax.checkpoint.__version__}}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the summary."""
  wall_start = time.perf_counter()
  workdir.mkdir(parents=True, exist_ok=True)
  dataset = data.load(config.dataset)
  task = tasks.TASKS[config.loss]
  model = models.build(config.model)
  state = initial_state(config, model, dataset.input_shape)
  print_model_summary(model, dataset.input_shape)
  records.write_config(workdir, config)

  checkpoints = Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints)
  epoch = 0
  if checkpoints.latest_step() is not None:
    state, progress = checkpoints.restore(state)
    epoch = progress["epoch"]
    print(f"Resuming from checkpoint at step {int(state.step)} (epoch {epoch}).")
  log = records.MetricsLog(workdir, resume_after_epoch=epoch)
  runner = _EpochRunner(config, dataset, task, state)
  predict_fn = jax.jit(lambda params, x: model.apply({"params": params}, x))
  eval_splits = [name for name in dataset.splits if name != "train"]

  train_seconds = 0.0
  start_epoch = epoch
  while epoch < config.num_epochs:
    chunk = min(config.log_every_epochs, config.num_epochs - epoch)
    start = time.perf_counter()
    compile_before = runner.compile_seconds
    state, train_metrics = runner.run(state, epoch, chunk)
    train_seconds += time.perf_counter() - start - (runner.compile_seconds - compile_before)
    for offset, metrics in enumerate(train_metrics):
      log.write(epoch + offset + 1, "train", metrics)
    epoch += chunk
    line = f"Epoch {epoch}/{config.num_epochs}: train {_format(train_metrics[-1])}"
    for name in eval_splits:
      metrics = evaluate(predict_fn, state.params, dataset.splits[name], task, config.eval_batch_size,
                         dataset.target_scale)
      log.write(epoch, name, metrics)
      line += f"; {name} {_format(metrics)}"
    print(line, flush=True)
    if epoch == config.num_epochs or (config.checkpoint_every_epochs and epoch % config.checkpoint_every_epochs == 0):
      checkpoints.save(state, {"epoch": epoch})
  log.close()
  checkpoints.close()

  final = {name: evaluate(predict_fn, state.params, split, task, config.eval_batch_size, dataset.target_scale)
           for name, split in dataset.splits.items()}
  rows = records.read_metrics(workdir)
  plots.plot_run(rows, workdir, config.get("name", config.model.name))
  examples_trained = (config.num_epochs - start_epoch) * runner.steps_per_epoch * runner.batch_size
  summary = {
      "final": final,
      "epochs": config.num_epochs,
      "steps": int(state.step),
      "compile_seconds": runner.compile_seconds,
      "train_seconds": train_seconds,
      "train_examples_per_second": examples_trained / train_seconds if train_seconds else None,
      "wall_seconds": time.perf_counter() - wall_start,
      **environment(),
  }
  if "test" in final and "accuracy" in final["test"]:
    print(f"Test accuracy: {final['test']['accuracy']:.2%}")
  predictions = predict_examples(dataset, predict_fn, state.params, config.get("predict_examples", ()))
  if predictions:
    summary["predictions"] = predictions
  records.write_json(workdir / "summary.json", summary)
  print(f"Compile {runner.compile_seconds:.2f} s, training {train_seconds:.2f} s after compilation, "
        f"wall {summary['wall_seconds']:.2f} s. Run directory: {workdir}")
  return summary


def predict_examples(dataset: Dataset, predict_fn, params, raw_inputs) -> list[dict]:
  """Predicts raw inputs (in the user's units), prints each and returns them as records."""
  if len(raw_inputs) == 0:
    return []
  raw = np.asarray(raw_inputs, np.float64)
  values = dataset.decode_outputs(np.asarray(predict_fn(params, dataset.encode_inputs(raw)))).reshape(len(raw), -1)
  results = []
  for inputs, value in zip(raw, values):
    print("Prediction:", dataset.describe_prediction(inputs, float(value[0])))
    results.append({"input": inputs.tolist(), "prediction": float(value[0])})
  return results


def restore_for_inference(workdir: pathlib.Path):
  """(config, model, params) of a run's latest checkpoint, without its optimizer state."""
  config = ml_collections.ConfigDict(records.read_config(workdir))
  model = models.build(config.model)
  checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
  params = checkpoints.restore_params()
  checkpoints.close()
  return config, model, params
