"""The one trainer: train state, the pure jitted train step, evaluation and the epoch loop.

Every model and dataset goes through `train_and_evaluate(config, workdir)`.
The epoch loop itself (nn_jax/loop.py) runs full-batch training as compiled
`lax.scan`s and mini-batch training as a Python loop over the jitted step.
A run resumes from its workdir's latest good checkpoint, exactly.
"""

import pathlib
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint
from flax.training import train_state

import nn_jax
from nn_jax import data, interrupt, models, parallel, plots, records, tasks
from nn_jax.checkpoint import Checkpoints
from nn_jax.data.dataset import Dataset
from nn_jax.errors import UserError
from nn_jax.loop import Diverged, EpochLoop, batch_plan, is_checkpoint_epoch, is_log_epoch, ranked_metrics
from nn_jax.status import RunStatus

# Fields that say how long, how verbosely or where to run, not what; a resumed run may change them.
RESUMABLE_CHANGES = {"num_epochs", "progress", "log_every_epochs", "checkpoint_every_epochs",
                     "checkpoint_every_steps", "keep_checkpoints", "allow_config_change", "distributed"}


def make_optimizer(optimizer_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  makers = {"sgd": optax.sgd, "adam": optax.adam}
  return makers[optimizer_config.name](optimizer_config.learning_rate)


def init_params(model: nn.Module, input_shape, key: jax.Array):
  return model.init(key, jnp.zeros((1, *input_shape), jnp.float32))["params"]


def initial_state(config: ml_collections.ConfigDict, model: nn.Module, input_shape,
                  params=None) -> train_state.TrainState:
  """The state before the first step; its keys derive from `config.seed` alone.

  `params` replaces the seed's initialization with given values of the same tree (a parity test
  starting from another program's weights, a warm start); UserError when the tree differs.
  """
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  initialized = init_params(model, input_shape, init_key)
  if params is not None:
    expected = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), initialized)
    given = jax.tree_util.tree_map(lambda a: (np.shape(a), jnp.float32), params)
    if given != expected:
      raise UserError(f"the given initial params do not match {type(model).__name__}'s: expected {expected}")
    initialized = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
  return train_state.TrainState.create(apply_fn=model.apply, params=initialized, tx=make_optimizer(config.optimizer))


def microbatch_count(config: ml_collections.ConfigDict, model: nn.Module, batch_size: int) -> int:
  """How many microbatches a step of `batch_size` examples accumulates its gradient over.

  `config.microbatch_size` > 0 must divide the batch (UserError otherwise). 0 leaves the choice to
  the model's `training_microbatch_size()` (models without one: the whole batch): round(batch / size)
  microbatches, or the next smaller count that divides the batch.
  """
  size = config.get("microbatch_size", 0)
  if size:
    if batch_size % size:
      raise UserError(f"config.microbatch_size {size} does not divide the batch of {batch_size} examples; "
                      f"use a divisor of {batch_size}, or 0 for the model's choice")
    return batch_size // size
  preferred = getattr(model, "training_microbatch_size", lambda: 0)()
  count = max(1, round(batch_size / preferred)) if preferred else 1
  while batch_size % count:
    count -= 1
  return count


def _split(array: jax.Array, count: int) -> jax.Array:
  """(B, ...) -> (count, B / count, ...); example i goes to microbatch i % count, so a batch split
  along a device mesh stays split within every microbatch."""
  return array.reshape(array.shape[0] // count, count, *array.shape[1:]).swapaxes(0, 1)


def _merge(array: jax.Array) -> jax.Array:
  """The inverse of _split."""
  return array.swapaxes(0, 1).reshape(-1, *array.shape[2:])


def make_train_step(task: tasks.Task, microbatches: int = 1):
  """Returns the pure `(state, batch) -> (state, metrics)`; metrics are of the params before the update.

  With `microbatches` > 1 the gradient is accumulated over that many equal microbatches, one after
  another (a lax.scan): the batch's mean gradient as before, up to summation order, computed with a
  microbatch's working set. The fused CNN on CPU trains 1.3x to 1.5x faster so (README "Performance").
  """

  def train_step(state, batch):
    inputs, targets = batch

    def loss_fn(params, inputs, targets):
      outputs = state.apply_fn({"params": params}, inputs)
      return task.loss(outputs, targets), outputs

    gradient = jax.grad(loss_fn, has_aux=True)
    if microbatches == 1:
      grads, outputs = gradient(state.params, inputs, targets)
    else:
      def accumulate(total, microbatch):
        grads, outputs = gradient(state.params, *microbatch)
        return jax.tree_util.tree_map(jnp.add, total, grads), outputs

      zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
      total, outputs = jax.lax.scan(accumulate, zeros, (_split(inputs, microbatches), _split(targets, microbatches)))
      grads = jax.tree_util.tree_map(lambda g: g / microbatches, total)
      outputs = _merge(outputs)
    metrics = task.metrics(outputs, targets)
    metrics["grad_norm"] = optax.tree.norm(grads)  # watched by the divergence guard
    return state.apply_gradients(grads=grads), metrics

  return train_step


def predict_outputs(predict_fn, params, inputs: np.ndarray, batch_size: int, multiple: int = 1,
                    place=lambda batch: batch) -> np.ndarray:
  """Model outputs for every input. Batches are padded to one fixed size (a multiple of the
  device count), so one compiled shape serves all; the padding is sliced off, so every
  example counts exactly once. `place` puts a host batch onto the devices."""
  n = len(inputs)
  batch_size = parallel.round_up(min(batch_size, n), multiple)
  outputs = []
  for start in range(0, n, batch_size):
    chunk = inputs[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    outputs.append(np.asarray(predict_fn(params, place(padded)))[:len(chunk)])
  return np.concatenate(outputs)


def evaluate(predict_fn, params, split, task: tasks.Task, batch_size: int, target_scale: float,
             multiple: int = 1, place=lambda batch: batch) -> dict:
  inputs, targets = split
  outputs = predict_outputs(predict_fn, params, inputs, batch_size, multiple, place)
  metrics = {k: float(v) for k, v in task.metrics(jnp.asarray(outputs), jnp.asarray(targets)).items()}
  metrics.update(task.split_metrics(outputs, targets, target_scale))
  return metrics


def evaluate_splits(predict_fn, params, dataset: Dataset, names, task: tasks.Task, batch_size: int,
                    multiple: int = 1, place=lambda batch: batch) -> dict:
  """{split name: its metrics} for the named splits of `dataset`."""
  return {name: evaluate(predict_fn, params, dataset.splits[name], task, batch_size, dataset.target_scale,
                         multiple, place) for name in names}


def format_metrics(metrics: dict) -> str:
  shown = sorted((item for item in metrics.items() if item[0] != "grad_norm"), key=lambda item: item[0] != "loss")
  return ", ".join(f"{k} {v:.2%}" if k == "accuracy" else f"{k} {v:.4f}" for k, v in shown)


def print_model_summary(model: nn.Module, input_shape) -> None:
  table = nn.tabulate(model, jax.random.key(0), compute_flops=True,
                      console_kwargs={"force_terminal": False, "no_color": True, "width": 100})
  print(table(jnp.zeros((1, *input_shape), jnp.float32)))


def environment() -> dict:
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": device.device_kind, "device_count": jax.device_count(),
          "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                       "orbax_checkpoint": orbax.checkpoint.__version__}}


def check_resumable(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Refuses to resume a workdir whose run had a different config, but for run-length fields."""
  if not (workdir / "config.json").exists():
    return
  saved = records.flatten(records.read_config(workdir))
  wanted = records.flatten(records.config_to_dict(config))
  changed = [f"{key}: {saved.get(key)!r} -> {wanted.get(key)!r}" for key in sorted(set(saved) | set(wanted))
             if key.split(".")[0] not in RESUMABLE_CHANGES and saved.get(key) != wanted.get(key)]
  if changed and not config.get("allow_config_change", False):
    raise UserError(f"{workdir} holds a run with another config ({'; '.join(changed[:4])}"
                    f"{'; ...' if len(changed) > 4 else ''}); use a new --workdir, or pass "
                    f"--config.allow_config_change=True to resume it anyway")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path, initial_params=None) -> dict | None:
  """Trains `config` in `workdir`, resuming from its latest good checkpoint.

  `initial_params`, when given, starts a new run from these parameters instead of the seed's
  initialization (see `initial_state`); a resumed run continues from its checkpoint as always.

  Returns the summary, or None when a signal stopped the run (it is resumable).
  Raises Diverged when a loss or gradient becomes NaN or Inf.
  """
  wall_start = time.perf_counter()
  check_resumable(config, workdir)
  mesh = parallel.make_mesh()
  if config.batch_size:
    parallel.check_batch_size(config.batch_size, mesh)
  dataset = data.load(config.dataset)
  task = tasks.TASKS[config.loss]
  model = models.build(config.model, config.compute_dtype)
  _, batch_size, _ = batch_plan(config.batch_size, len(dataset.splits["train"][0]))
  microbatches = microbatch_count(config, model, batch_size)
  primary = parallel.is_primary()
  workdir.mkdir(parents=True, exist_ok=True)
  status = RunStatus(workdir, enabled=primary)
  if primary:
    records.write_config(workdir, config)

  replicated = parallel.replicated(mesh)
  state = jax.device_put(initial_state(config, model, dataset.input_shape, initial_params), replicated)
  print_model_summary(model, dataset.input_shape)
  if microbatches > 1:
    print(f"Each step accumulates its gradient over {microbatches} microbatches of {batch_size // microbatches} "
          f"examples.")
  checkpoints = Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints,
                            best_metric=config.checkpoint_best_metric, best_mode=config.checkpoint_best_mode)
  state, progress = checkpoints.restore_latest_good(state, replicated)
  if progress is not None:
    print(f"Resuming from checkpoint at step {int(state.step)} (epoch {progress['epoch']}, "
          f"batch {progress.get('batch', 0)}).")
  status.start()

  def save(state, position: dict, metrics) -> None:
    checkpoints.save(state, position, metrics)
    status.update(steps_done=int(state.step), epochs_done=position["epoch"], last_checkpoint_step=int(state.step))

  loop = EpochLoop(config, dataset, make_train_step(task, microbatches), mesh, state, progress, save)
  log = records.MetricsLog(workdir, resume_after_epoch=loop.epoch, enabled=primary)
  predict_fn = jax.jit(lambda params, x: model.apply({"params": params}, x),
                       in_shardings=(replicated, parallel.split_along_data(mesh)), out_shardings=replicated)
  devices = mesh.devices.size
  place = lambda batch: parallel.global_batch(mesh, batch)

  def evaluate_on(params, names) -> dict:
    return evaluate_splits(predict_fn, params, dataset, names, task, config.eval_batch_size, devices, place)

  eval_names = [name for name in dataset.splits if name != "train"]
  target_split, _, target_name = config.target_metric.partition("/")
  time_to_target = None  # measured only when reached in this process: a resumed run's clock restarted
  try:
    with interrupt.StopRequest() as stop:
      for rows in loop.run(stop):
        for epoch, metrics in rows:
          log.write(epoch, "train", metrics)
        epoch, train_metrics = rows[-1]
        evaluated = {}
        if is_log_epoch(config, epoch):
          evaluated = evaluate_on(loop.state.params, eval_names)
          line = f"Epoch {epoch}/{config.num_epochs}: train {format_metrics(train_metrics)}"
          for name, metrics in evaluated.items():
            log.write(epoch, name, metrics)
            line += f"; {name} {format_metrics(metrics)}"
          print(line, flush=True)
          reached = evaluated.get(target_split, {}).get(target_name)
          if reached is not None and reached >= config.target_value and time_to_target is None:
            time_to_target = {"metric": config.target_metric, "value": config.target_value, "epoch": epoch,
                              "seconds_from_launch": time.time() - nn_jax.LAUNCH_TIME}
            print(f"{config.target_metric} reached {config.target_value} at epoch {epoch}, "
                  f"{time_to_target['seconds_from_launch']:.1f} s after launch.")
        if is_checkpoint_epoch(config, epoch):
          loop.save(ranked_metrics(train_metrics, evaluated))
  except Diverged as e:
    status.update(status="diverged", message=str(e))
    raise
  finally:
    log.close()
    checkpoints.close()
  if loop.stopped_by:
    message = (f"Stopped by {loop.stopped_by} at step {loop.host_step}; checkpoint saved. "
               f"Resume by running the same command again (same --workdir).")
    status.update(status="preempted", preemptions=status.fields["preemptions"] + 1, message=message)
    print(message)
    return None

  timing = {"compile_seconds": loop.compile_seconds, "train_seconds": loop.train_seconds,
            "examples_trained": loop.examples_trained, "wall_start": wall_start, "time_to_target": time_to_target,
            "microbatches": microbatches}
  return finish_run(config, workdir, dataset, evaluate_on(loop.state.params, list(dataset.splits)),
                    int(loop.state.step), timing, status,
                    lambda raw: predict_examples(dataset, predict_fn, loop.state.params, raw, devices, place))


def finish_run(config, workdir: pathlib.Path, dataset: Dataset, final: dict, steps: int, timing: dict,
               status: RunStatus, predict) -> dict:
  """Writes a finished run's plots, summary.json and status, prints its results, returns the summary."""
  primary = parallel.is_primary()
  if primary:
    plots.plot_run(records.read_metrics(workdir), workdir, config.name or config.model.name,
                   tasks.TASKS[config.loss].curve)
  train_seconds = timing["train_seconds"]
  summary = {
      "final": final,
      "epochs": config.num_epochs,
      "steps": steps,
      "compile_seconds": timing["compile_seconds"],
      "train_seconds": train_seconds,
      "train_examples_per_second": timing["examples_trained"] / train_seconds if train_seconds else None,
      "wall_seconds": time.perf_counter() - timing["wall_start"],
      "microbatches": timing.get("microbatches", 1),
      **environment(),
  }
  if dataset.reference_metrics:
    summary["reference"] = dataset.reference_metrics
  if timing.get("vectorized_seeds"):  # its seconds are the group's divided by the seeds
    summary["vectorized_seeds"] = timing["vectorized_seeds"]
  if timing.get("time_to_target"):
    summary["time_to_target"] = timing["time_to_target"]
  for name, metrics in final.items():
    reference = dataset.reference_metrics.get(name, {})
    print(f"Final {name}: {format_metrics(metrics)}" + (f" (reference: {format_metrics(reference)})" if reference else ""))
  if "test" in final and "accuracy" in final["test"]:
    print(f"Test accuracy: {final['test']['accuracy']:.2%}")
  predictions = predict(config.predict_examples)
  if predictions:
    summary["predictions"] = predictions
  if primary:
    records.write_json(workdir / "summary.json", summary)
  status.update(status="done", steps_done=steps, epochs_done=config.num_epochs)
  print(f"Compile {summary['compile_seconds']:.2f} s, training {train_seconds:.2f} s after compilation, "
        f"wall {summary['wall_seconds']:.2f} s. Run directory: {workdir}")
  return summary


def predict_examples(dataset: Dataset, predict_fn, params, raw_inputs, multiple: int = 1,
                     place=lambda batch: batch) -> list[dict]:
  """Predicts raw inputs (in the user's units), prints each and returns them as records."""
  if len(raw_inputs) == 0:
    return []
  raw = np.asarray(raw_inputs, np.float64)
  outputs = predict_outputs(predict_fn, params, dataset.encode_inputs(raw), len(raw), multiple, place)
  values = dataset.decode_outputs(outputs).reshape(len(raw), -1)
  results = []
  for inputs, value in zip(raw, values):
    print(dataset.describe_prediction(inputs, float(value[0])))
    results.append({"input": inputs.tolist(), "prediction": float(value[0])})
  return results


def restore_for_inference(workdir: pathlib.Path):
  """(config, model, params) of a run's latest checkpoint, without its optimizer state."""
  config = ml_collections.ConfigDict(records.read_config(workdir))
  model = models.build(config.model, config.get("compute_dtype", "float32"))
  checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
  params = checkpoints.restore_params(parallel.replicated(parallel.make_mesh()))
  checkpoints.close()
  return config, model, params
