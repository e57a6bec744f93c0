"""Several seeds of one config trained as one compiled program: `jax.vmap` over the seeds' states.

Only the seed differs between the runs, so their initial states stack along a
leading axis and each step trains all of them; each seed keeps its own data
order, `epoch_permutation(seed, epoch)`, exactly as when run alone. Each seed
still gets its own ordinary run directory (config.json, metrics.jsonl,
checkpoints, summary.json, status.json), so nothing downstream can tell.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from nn_jax import data, interrupt, models, records, tasks, train
from nn_jax.checkpoint import Checkpoints
from nn_jax.loop import (Diverged, EpochSums, _full_batch_epochs, batch_plan, epoch_end_position,
                         epoch_permutation, is_checkpoint_epoch, is_log_epoch, ranked_metrics)
from nn_jax.status import RunStatus


class CannotVectorize(Exception):
  """Says why these runs must go one by one."""


def check_vectorizable(configs) -> None:
  base = records.config_to_dict(configs[0])
  for config in configs[1:]:
    other = records.config_to_dict(config)
    if {k: v for k, v in other.items() if k != "seed"} != {k: v for k, v in base.items() if k != "seed"}:
      raise CannotVectorize("the configs differ in more than the seed")
  if jax.device_count() > 1:
    raise CannotVectorize(f"{jax.device_count()} devices: vectorized seeds run on one device; the data-parallel "
                          f"path trains each seed across all of them instead")
  if configs[0].checkpoint_every_steps:
    raise CannotVectorize("checkpoint_every_steps > 0: vectorized seeds save at epoch ends only")


def _unstack(tree, index):
  return jax.tree_util.tree_map(lambda a: a[index], tree)


def train_seeds(configs, workdirs) -> list[dict] | None:
  """Trains every config (differing only by seed) into its workdir, from scratch; returns their summaries.

  Returns None when a signal stopped it (every seed saved and marked
  preempted). Raises CannotVectorize when a seed diverges: the caller then runs
  the seeds one by one, each from its own last checkpoint.
  """
  check_vectorizable(configs)
  wall_start = time.perf_counter()
  base = configs[0]
  seeds = [config.seed for config in configs]
  dataset = data.load(base.dataset)
  task = tasks.TASKS[base.loss]
  model = models.build(base.model, base.compute_dtype)
  alone = [train.initial_state(c, model, dataset.input_shape) for c in configs]
  stack = lambda *trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
  # One apply_fn and optimizer for all (their static fields must be the same objects to stack).
  states = alone[0].replace(step=stack(*[a.step for a in alone]), params=stack(*[a.params for a in alone]),
                            opt_state=stack(*[a.opt_state for a in alone]))
  inputs, targets = dataset.splits["train"]
  num_examples = len(inputs)
  full_batch, batch_size, steps_per_epoch = batch_plan(base.batch_size, num_examples)

  runs = []
  for config, workdir in zip(configs, workdirs):
    workdir.mkdir(parents=True, exist_ok=True)
    records.write_config(workdir, config)
    status = RunStatus(workdir)
    status.start()
    runs.append({"workdir": workdir, "status": status, "log": records.MetricsLog(workdir),
                 "checkpoints": Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints,
                                            best_metric=config.checkpoint_best_metric,
                                            best_mode=config.checkpoint_best_mode)})

  microbatches = train.microbatch_count(base, model, batch_size)
  train_step = train.make_train_step(task, microbatches)
  compile_seconds = 0.0

  def compiled(jitted, *args):
    nonlocal compile_seconds
    start = time.perf_counter()
    program = jitted.lower(*args).compile()
    compile_seconds += time.perf_counter() - start
    return program

  if full_batch:
    batch = jax.device_put((inputs, targets))
    scans = {}
  else:
    example = (np.stack([inputs[:batch_size]] * len(seeds)), np.stack([targets[:batch_size]] * len(seeds)))
    step = compiled(jax.jit(jax.vmap(train_step), donate_argnums=0), states, example)
  predict_fn = jax.jit(lambda params, x: model.apply({"params": params}, x))
  eval_names = [name for name in dataset.splits if name != "train"]

  train_seconds, epoch, host_step = 0.0, 0, 0
  with interrupt.StopRequest() as stop:
    while epoch < base.num_epochs:
      if full_batch:
        count = min(base.log_every_epochs, base.num_epochs - epoch)
        if count not in scans:
          scan = functools.partial(_full_batch_epochs(train_step), num_epochs=count)
          scans[count] = compiled(jax.jit(jax.vmap(scan, in_axes=(0, None)), donate_argnums=0), states, batch)
        start = time.perf_counter()
        states, metrics = scans[count](states, batch)
        per_step = [{k: v[:, i] for k, v in jax.device_get(metrics).items()} for i in range(count)]
        epoch_ends = list(range(count))  # every full-batch step is an epoch
      else:
        count = 1
        start = time.perf_counter()
        orders = np.stack([epoch_permutation(seed, epoch, num_examples) for seed in seeds])
        pending = []
        for b in range(steps_per_epoch):
          indices = orders[:, b * batch_size:(b + 1) * batch_size]
          states, metrics = step(states, (inputs[indices], targets[indices]))
          pending.append(metrics)
        per_step = jax.device_get(pending)
        epoch_ends = [steps_per_epoch - 1]
      train_seconds += time.perf_counter() - start

      rows = [[] for _ in seeds]
      for s in range(len(seeds)):
        sums = EpochSums()
        for i, metrics in enumerate(per_step):
          try:
            sums.fold([{k: v[s] for k, v in metrics.items()}], host_step + i, None)
          except Diverged as e:
            raise CannotVectorize(f"seed {seeds[s]} diverged ({e})") from e
          if i in epoch_ends:
            rows[s].append((epoch + len(rows[s]) + 1, sums.means()))
            sums = EpochSums()
      epoch += count
      host_step += len(per_step)
      logged = is_log_epoch(base, epoch)
      for s, run in enumerate(runs):
        for row_epoch, metrics in rows[s]:
          run["log"].write(row_epoch, "train", metrics)
        evaluated = {}
        if logged:
          evaluated = train.evaluate_splits(predict_fn, _unstack(states.params, s), dataset, eval_names, task,
                                            base.eval_batch_size)
          for name, metrics in evaluated.items():
            run["log"].write(epoch, name, metrics)
        if is_checkpoint_epoch(base, epoch):
          run["checkpoints"].save(_unstack(states, s), epoch_end_position(epoch),
                                  ranked_metrics(rows[s][-1][1], evaluated))
          run["status"].update(steps_done=host_step, epochs_done=epoch, last_checkpoint_step=host_step)
      if logged:
        print(f"Epoch {epoch}/{base.num_epochs}: {len(seeds)} seeds, train loss "
              + " ".join(f"{rows[s][-1][1]['loss']:.4f}" for s in range(len(seeds))), flush=True)
      if stop.requested and epoch < base.num_epochs:
        for s, run in enumerate(runs):
          if run["checkpoints"].latest_step() != host_step:
            run["checkpoints"].save(_unstack(states, s), epoch_end_position(epoch))
          run["checkpoints"].close()
          run["log"].close()
          run["status"].update(status="preempted", preemptions=run["status"].fields["preemptions"] + 1,
                               steps_done=host_step, epochs_done=epoch, last_checkpoint_step=host_step)
        print(f"Stopped by {stop.reason} after epoch {epoch}; every seed saved. Run the sweep again to resume.")
        return None

  summaries = []
  for s, (config, run) in enumerate(zip(configs, runs)):
    run["log"].close()
    run["checkpoints"].close()
    params = _unstack(states.params, s)
    final = train.evaluate_splits(predict_fn, params, dataset, list(dataset.splits), task, base.eval_batch_size)
    timing = {"compile_seconds": compile_seconds / len(seeds), "train_seconds": train_seconds / len(seeds),
              "examples_trained": base.num_epochs * steps_per_epoch * batch_size, "wall_start": wall_start,
              "vectorized_seeds": len(seeds), "microbatches": microbatches}
    summaries.append(train.finish_run(config, run["workdir"], dataset, final, host_step, timing, run["status"],
                                      lambda raw: train.predict_examples(dataset, predict_fn, params, raw)))
  return summaries
