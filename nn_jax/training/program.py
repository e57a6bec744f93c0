"""The one program builder: what trains R >= 1 runs, from their configs and the training split.

`build` resolves the config's "auto" choices, builds the model and the pure
train step; `Program.initial_state` gives the runs' states stacked on the run
axis and `Program.loop` the epoch loop that compiles and dispatches K steps
at a time. The trainer and the benchmarks both build here, so a benchmark
times exactly what trains.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nn_jax import models
from nn_jax.common import parallel
from nn_jax.common.errors import UserError
from nn_jax.training import auto, optim, tasks
from nn_jax.training.loop import EpochLoop, batch_plan, seed_keys
from nn_jax.training.step import TrainState, make_train_step


def total_steps(config, num_examples: int) -> int:
  return config.num_epochs * batch_plan(config.batch_size, num_examples)[2]


def microbatch_count(batch_size: int, microbatch_size: int) -> int:
  """How many microbatches a step accumulates its gradient over (microbatch_size 0: one)."""
  if not microbatch_size or microbatch_size >= batch_size:
    return 1
  if batch_size % microbatch_size:
    raise UserError(f"config.microbatch_size {microbatch_size} does not divide the batch of {batch_size} examples; "
                    f"use a divisor of {batch_size}, or 0 to let the backend choose")
  return batch_size // microbatch_size


@functools.cache
def _init_function(model: nn.Module, input_shape: tuple):
  """`model.init` compiled once per model and input shape: run eagerly, initialization dispatches
  dozens of tiny programs, which outlast a small model's training. Linen modules compare by their
  fields, so equal configs share the compiled function; the run-axis fields arrive as arrays."""
  return jax.jit(lambda key_data, hyperparams: model.clone(**hyperparams).init(
      jax.random.wrap_key_data(key_data), jnp.zeros((1, *input_shape), jnp.float32)))


def initial_state(config: ml_collections.ConfigDict, model: nn.Module, input_shape, num_examples: int = 1,
                  params=None) -> TrainState:
  """One run's state before the first step; its keys derive from `config.seed` alone.

  `params` replaces the seed's initialization with given values of the same tree (a parity test
  starting from another program's weights, a warm start); UserError when the tree differs.
  """
  keys = seed_keys(config.seed)
  hyperparams = {k: jnp.float32(v) for k, v in models.run_axis_values(config.model).items()}
  # The run-axis fields (an initializer's scale, say) arrive as arrays: one compiled init serves every value.
  init_model = model.clone(**{field: 0.0 for field in hyperparams})
  variables = dict(_init_function(init_model, tuple(input_shape))(keys["init"], hyperparams))
  initialized = variables.pop("params")
  if params is not None:
    expected = jax.tree_util.tree_map(lambda a: a.shape, initialized)
    if jax.tree_util.tree_map(np.shape, params) != expected:
      raise UserError(f"the given initial params do not match {type(model).__name__}'s: expected shapes {expected}")
    initialized = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
  tx = optim.make_optimizer(config.optimizer, config.schedule, total_steps(config, num_examples))
  return TrainState.create(apply_fn=model.apply, params=initialized, tx=tx, model_state=variables,
                           rng=keys["rng"], model_hyperparams=hyperparams)


# The train state's array fields; apply_fn and tx are the program's, shared by its runs.
_ARRAY_FIELDS = ("step", "params", "opt_state", "model_state", "rng", "model_hyperparams")


@jax.jit
def _stack(trees):
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


@jax.jit
def _take(tree, index):
  return jax.tree_util.tree_map(lambda a: a[index], tree)


def stack(states: list[TrainState]) -> TrainState:
  """The runs' states on a leading axis; the first one's apply_fn and optimizer serve all (each run's
  hyperparameters are arrays in its optimizer state and its model_hyperparams). One compiled program
  for the whole state: leaf by leaf, each shape would be a program of its own to look up."""
  return states[0].replace(**_stack([{field: getattr(s, field) for field in _ARRAY_FIELDS} for s in states]))


def run_state(states: TrainState, index: int) -> TrainState:
  """One run's state out of the stacked states (one compiled program for every run and field)."""
  return states.replace(**_take({field: getattr(states, field) for field in _ARRAY_FIELDS}, index))


@dataclasses.dataclass
class Program:
  """What trains the runs: the resolved config (the first run's), the model, the pure train step."""
  config: ml_collections.ConfigDict
  choices: dict  # what "auto" resolved to, for summary.json
  model: nn.Module
  task: tasks.Task
  microbatches: int
  train_step: object  # (state, batch) -> (state, metrics)
  input_shape: tuple
  num_examples: int

  def initial_state(self, config, mesh, params=None) -> TrainState:
    """One run's fresh state, replicated over the mesh (what its checkpoints hold)."""
    state = initial_state(config, self.model, self.input_shape, self.num_examples, params)
    return jax.device_put(state, parallel.replicated(mesh))

  def initial_states(self, configs, mesh, params=None) -> TrainState:
    """The runs' fresh states, stacked on the run axis."""
    return jax.device_put(stack([self.initial_state(config, mesh, params) for config in configs]),
                          parallel.replicated(mesh))

  def loop(self, configs, inputs, targets, mesh, state, progress=None, save_fn=None, profile_dir=None,
           watchdog=None) -> EpochLoop:
    """The epoch loop over the training split from `state` (stacked) and `progress` (None: the start)."""
    source = "device" if self.config.data_on_device == "true" else "host"
    return EpochLoop(self.config, inputs, targets, self.train_step, mesh, state, progress,
                     [seed_keys(config.seed)["data"] for config in configs], source, self.config.steps_per_dispatch,
                     save_fn or (lambda *args: None), profile_dir=profile_dir, watchdog=watchdog)


def build(configs, inputs, targets) -> Program:
  """The program of `configs` (R runs that differ only in keys hparams.py marks RUN_AXIS) over the training split."""
  base = configs[0]
  full_batch, batch_size, _ = batch_plan(base.batch_size, len(inputs))
  resolved = auto.resolve(base, data_bytes=inputs.nbytes + targets.nbytes, full_batch=full_batch)
  if resolved.data_on_device == "true" and jax.process_count() > 1:
    raise UserError("config.data_on_device=true needs a single process; a multi-host run feeds each process's "
                    "block from the host (use auto or false)")
  model = models.build(resolved.model, resolved.compute_dtype)
  task = tasks.TASKS[base.loss]
  microbatches = microbatch_count(batch_size, resolved.microbatch_size)
  return Program(resolved, auto.choices(base, resolved), model, task, microbatches,
                 make_train_step(task, model, microbatches), tuple(inputs.shape[1:]), len(inputs))
