"""The train state and the pure, jitted programs built on the train step.

`make_train_step` is the pure `(state, batch) -> (state, metrics)`. The loop
never calls it alone: it dispatches `make_dispatch`'s program, which runs K
steps as one `lax.scan` (K = config.steps_per_dispatch), over batches sent
from the host or gathered on the device from data uploaded once, for R >= 1
runs at once: the state always has a leading run axis, vmapped when R > 1.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from nn_jax.training import tasks


class TrainState(train_state.TrainState):
  """Flax's TrainState plus what the model contract adds (nn_jax/models/__init__.py).

  model_state: the model's mutable collections, e.g. {"batch_stats": ...}; {} for most models.
  rng: the run's key data (uint32); a step's keys are fold_in(rng, step), so resuming draws the
       same keys as an uninterrupted run.
  model_hyperparams: the run's values of the model's run_axis_fields (e.g. dropout rates) as arrays,
       which training passes clone the model with; from the config, never checkpointed.
  """
  model_state: Any = flax.struct.field(default_factory=dict)
  rng: Any = None
  model_hyperparams: Any = flax.struct.field(default_factory=dict)

  def variables(self, params=None) -> dict:
    return {"params": self.params if params is None else params, **self.model_state}


def step_rngs(rng, step, rng_streams, microbatch=0) -> dict:
  """{stream: key} for one training pass: fresh per step and per microbatch, derived from the run's key."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(rng), step), microbatch)
  return {name: jax.random.fold_in(key, i) for i, name in enumerate(rng_streams)}


def _split(array: jax.Array, count: int) -> jax.Array:
  """(B, ...) -> (count, B / count, ...); example i goes to microbatch i % count, so a batch split
  along a device mesh stays split within every microbatch."""
  return array.reshape(array.shape[0] // count, count, *array.shape[1:]).swapaxes(0, 1)


def _merge(array: jax.Array) -> jax.Array:
  """The inverse of _split."""
  return array.swapaxes(0, 1).reshape(-1, *array.shape[2:])


def make_train_step(task: tasks.Task, model, microbatches: int = 1):
  """Returns the pure `(state, batch) -> (state, metrics)` of `model` (a linen Module, cloned with the
  state's model_hyperparams); metrics are of the params before the update.

  With `microbatches` > 1 the gradient is accumulated over that many equal microbatches, one after
  another (a lax.scan): the batch's mean gradient, summed in another order, computed with a
  microbatch's working set. Model state (BatchNorm's statistics) is carried from one microbatch
  to the next.
  """

  rng_streams = type(model).rng_streams

  def train_step(state: TrainState, batch):
    inputs, targets = batch
    mutable = list(state.model_state)
    apply = model.clone(**state.model_hyperparams).apply

    def loss_fn(params, model_state, inputs, targets, rngs):
      outputs, new_model_state = apply({"params": params, **model_state}, inputs, train=True, rngs=rngs,
                                       mutable=mutable)
      return task.loss(outputs, targets), (outputs, new_model_state)

    gradient = jax.grad(loss_fn, has_aux=True)
    if microbatches == 1:
      grads, (outputs, model_state) = gradient(state.params, state.model_state, inputs, targets,
                                               step_rngs(state.rng, state.step, rng_streams))
    else:
      def accumulate(carry, microbatch):
        total, model_state = carry
        index, inputs, targets = microbatch
        grads, (outputs, model_state) = gradient(state.params, model_state, inputs, targets,
                                                 step_rngs(state.rng, state.step, rng_streams, index))
        return (jax.tree_util.tree_map(jnp.add, total, grads), model_state), outputs

      zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
      (total, model_state), outputs = jax.lax.scan(
          accumulate, (zeros, state.model_state),
          (jnp.arange(microbatches), _split(inputs, microbatches), _split(targets, microbatches)))
      grads = jax.tree_util.tree_map(lambda g: g / microbatches, total)
      outputs = _merge(outputs)
    metrics = task.metrics(outputs, targets)
    metrics["grad_norm"] = optax.global_norm(grads)  # watched by the divergence guard
    return state.apply_gradients(grads=grads, model_state=dict(model_state)), metrics

  return train_step


def over_runs(function, runs: int, in_axes, out_axes):
  """`function` mapped over the leading run axis of R runs: jax.vmap, or for R = 1 the one run's
  function with that axis taken off and put back, so a single run compiles to the unmapped program.
  `in_axes` and `out_axes` are 0 (mapped) or None (shared) per argument and per output."""
  if runs > 1:
    return jax.vmap(function, in_axes=in_axes, out_axes=out_axes)

  def one_run(*args):
    args = [arg if axis is None else jax.tree_util.tree_map(lambda a: a[0], arg) for arg, axis in zip(args, in_axes)]
    outputs = function(*args)
    if not isinstance(out_axes, tuple):
      return jax.tree_util.tree_map(lambda a: jnp.expand_dims(a, out_axes), outputs)
    return tuple(jax.tree_util.tree_map(lambda a, axis=axis: jnp.expand_dims(a, axis), output)
                 for output, axis in zip(outputs, out_axes))

  return one_run


def make_dispatch(train_step, source: str, steps: int, runs: int = 1, batch_size: int = 0, batch_sharding=None):
  """One program that runs `steps` (K) train steps of R runs; returns (state, metrics of shape (K, R)).

  The state has a leading run axis of R >= 1 runs (their seeds and hyperparameters, nn_jax/training/optim.py),
  and every step is mapped over it (over_runs). Arguments:
  source "full":   `(state, batch, active)`: the same whole-dataset batch each step (full-batch training);
         "host":   `(state, batches, active)`: (R, K, B, ...) batches gathered by the host;
         "device": `(state, data, orders, first_batch, active)`: data uploaded once, one order (R, N) per
                   run; batch b of the epoch is data[order[b*B:(b+1)*B]], gathered on the device.
  `active` (R,) keeps a run that stopped (early, or diverged) as it was. `batch_sharding` splits a batch
  gathered on the device along the mesh, as a host batch is split.
  """

  def loop(body, state, xs):
    if steps == 1:  # no loop: XLA:CPU runs its convolution ~15x slower inside one (docs/performance.md)
      state, metrics = body(state, jax.tree_util.tree_map(lambda x: x[0], xs))
      return state, jax.tree_util.tree_map(lambda m: m[None], metrics)
    return jax.lax.scan(body, state, xs)

  def full(state, batch):
    return loop(lambda s, _: train_step(s, batch), state, jnp.arange(steps))

  def host(state, batches):
    return loop(train_step, state, batches)

  def device(state, data, order, first_batch):
    def body(state, k):
      indices = jax.lax.dynamic_slice_in_dim(order, (first_batch + k) * batch_size, batch_size)
      batch = jax.tree_util.tree_map(lambda a: jnp.take(a, indices, axis=0), data)
      if batch_sharding is not None:
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      return train_step(state, batch)
    return loop(body, state, jnp.arange(steps))

  program = {"full": full, "host": host, "device": device}[source]

  def masked(state, *args):
    *args, active = args
    new_state, metrics = program(state, *args)
    return jax.tree_util.tree_map(lambda new, old: jnp.where(active, new, old), new_state, state), metrics

  in_axes = {"full": (0, None), "host": (0, 0), "device": (0, None, 0, None)}[source]
  return over_runs(masked, runs, in_axes=(*in_axes, 0), out_axes=(0, 1))


def make_predict(model):
  """`(variables, inputs) -> outputs` in inference mode (BatchNorm's running averages, no dropout)."""
  return lambda variables, inputs: model.apply(variables, inputs, train=False)
