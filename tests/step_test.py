"""The pure train step, its microbatches and RNG keys, and the K-step dispatch programs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment

from nn_jax import data, models
from nn_jax.training import loop, program, step, tasks


def _house():
  config = experiment("house_mlp")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  return config, dataset, model, program.initial_state(config, model, dataset.input_shape)


def test_one_train_step_changes_the_parameters_and_lowers_the_loss():
  config, dataset, model, state = _house()
  train_step = jax.jit(step.make_train_step(tasks.TASKS[config.loss], model))
  batch = dataset.splits["train"]
  new_state, metrics = train_step(state, batch)
  _, metrics_after = train_step(new_state, batch)
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), state.params, new_state.params)
  assert all(jax.tree_util.tree_leaves(changed))
  assert int(new_state.step) == 1
  assert float(metrics_after["loss"]) < float(metrics["loss"])


@pytest.mark.slow
def test_microbatched_step_takes_the_whole_batch_gradient():
  # With SGD at learning rate 1 a step's parameter change is minus the gradient: accumulating it over
  # microbatches changes the summation order only. The metrics pair each output with its own target.
  config = experiment("cnn_mnist", optimizer__name="sgd", optimizer__learning_rate=1.0)
  model = models.build(config.model)  # the fused path on CPU
  state = program.initial_state(config, model, (28, 28, 1))
  rng = np.random.default_rng(0)
  batch = (rng.random((12, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 12).astype(np.int32))
  task = tasks.TASKS[config.loss]
  change = lambda new: jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.subtract, new.params, state.params))
  whole, whole_metrics = jax.jit(step.make_train_step(task, model))(state, batch)
  for microbatches in (2, 3, 12):
    split, metrics = jax.jit(step.make_train_step(task, model, microbatches))(state, batch)
    for a, b in zip(change(split), change(whole)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key, value in whole_metrics.items():
      np.testing.assert_allclose(metrics[key], value, rtol=1e-5)


def test_microbatches_interleave_examples_and_merge_back():
  a = np.arange(12 * 2).reshape(12, 2)
  split = step._split(a, 3)
  np.testing.assert_array_equal(split[1], a[1::3])  # example i goes to microbatch i % 3
  np.testing.assert_array_equal(step._merge(split), a)


def test_step_keys_differ_per_step_and_microbatch_and_repeat_exactly():
  rng = loop.seed_keys(0)["rng"]
  keys = lambda step_number, microbatch=0: jax.random.key_data(
      step.step_rngs(rng, step_number, ("dropout",), microbatch)["dropout"])
  assert np.array_equal(keys(3), keys(3))
  assert not np.array_equal(keys(3), keys(4))
  assert not np.array_equal(keys(3), keys(3, 1))


def _bn_dropout_state():
  config = experiment("cnn_mnist:bn_dropout")
  model = models.build(config.model)
  return config, model, program.initial_state(config, model, (28, 28, 1))


@pytest.mark.slow
def test_batch_norm_statistics_are_model_state_updated_by_training_steps():
  config, model, state = _bn_dropout_state()
  assert set(state.model_state) == {"batch_stats"}
  rng = np.random.default_rng(0)
  batch = (rng.random((8, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 8).astype(np.int32))
  new_state, _ = jax.jit(step.make_train_step(tasks.TASKS[config.loss], model))(state, batch)
  moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), state.model_state, new_state.model_state)
  assert all(jax.tree_util.tree_leaves(moved))


@pytest.mark.slow
def test_dropout_acts_in_training_only_and_draws_the_steps_keys():
  config, model, state = _bn_dropout_state()
  x = np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32)
  variables = state.variables()
  predict = jax.jit(step.make_predict(model))
  np.testing.assert_array_equal(predict(variables, x), predict(variables, x))  # inference: deterministic

  def training_outputs(step_number):
    rngs = step.step_rngs(state.rng, step_number, model.rng_streams)
    return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])[0]

  np.testing.assert_array_equal(training_outputs(5), training_outputs(5))
  assert not np.array_equal(training_outputs(5), training_outputs(6))


@pytest.mark.parametrize("source", ["host", "device"])
def test_k_steps_in_one_dispatch_equal_k_single_steps(source):
  config = experiment("fnn_binary")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  state = program.initial_state(config, model, dataset.input_shape)
  train_step = step.make_train_step(tasks.TASKS[config.loss], model)
  inputs, targets = dataset.splits["train"]
  order = np.random.default_rng(0).permutation(len(inputs)).astype(np.int32)
  batches = [(inputs[order[b * 32:(b + 1) * 32]], targets[order[b * 32:(b + 1) * 32]]) for b in range(4)]
  one_by_one = state
  single = jax.jit(train_step)
  for batch in batches:
    one_by_one, _ = single(one_by_one, batch)
  dispatch = jax.jit(step.make_dispatch(train_step, source, 4, batch_size=32))  # one run: a run axis of 1
  one_run = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], state)
  active = jnp.ones(1, bool)
  if source == "host":
    dispatched, metrics = dispatch(one_run, tuple(np.stack(parts)[None] for parts in zip(*batches)), active)
  else:
    dispatched, metrics = dispatch(one_run, (inputs, targets), jnp.asarray(order)[None], jnp.int32(0), active)
  assert metrics["loss"].shape == (4, 1)
  for a, b in zip(jax.tree_util.tree_leaves(one_by_one.params), jax.tree_util.tree_leaves(dispatched.params)):
    np.testing.assert_allclose(a, b[0], rtol=1e-5, atol=1e-6)
