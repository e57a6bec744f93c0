"""The trainer: the pure train step, data order, evaluation, checkpoints and resume."""

import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import experiment
from nn_jax import data, loop, models, tasks, train
from nn_jax.errors import UserError


def _house():
  config = experiment("house_mlp")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  return config, dataset, model


def test_one_train_step_changes_the_parameters_and_lowers_the_loss():
  config, dataset, model = _house()
  state = train.initial_state(config, model, dataset.input_shape)
  step = jax.jit(train.make_train_step(tasks.TASKS[config.loss]))
  batch = dataset.splits["train"]
  new_state, metrics = step(state, batch)
  _, metrics_after = step(new_state, batch)
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), state.params, new_state.params)
  assert all(jax.tree_util.tree_leaves(changed))
  assert int(new_state.step) == 1
  assert float(metrics_after["loss"]) < float(metrics["loss"])


def test_microbatched_step_takes_the_whole_batch_gradient():
  # With SGD at learning rate 1 a step's parameter change is minus the gradient: accumulating it over
  # microbatches changes the summation order only. The metrics pair each output with its own target.
  config = experiment("cnn_mnist")
  config.optimizer.update({"name": "sgd", "learning_rate": 1.0})
  model = models.build(config.model)  # the fused path on CPU
  state = train.initial_state(config, model, (28, 28, 1))
  rng = np.random.default_rng(0)
  batch = (rng.random((12, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 12).astype(np.int32))
  task = tasks.TASKS[config.loss]
  change = lambda new: jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.subtract, new.params, state.params))
  whole, whole_metrics = jax.jit(train.make_train_step(task))(state, batch)
  for microbatches in (2, 3, 12):
    split, metrics = jax.jit(train.make_train_step(task, microbatches))(state, batch)
    for a, b in zip(change(split), change(whole)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key, value in whole_metrics.items():
      np.testing.assert_allclose(metrics[key], value, rtol=1e-5)


def test_microbatches_interleave_examples_and_merge_back():
  a = np.arange(12 * 2).reshape(12, 2)
  split = train._split(a, 3)
  np.testing.assert_array_equal(split[1], a[1::3])  # example i goes to microbatch i % 3
  np.testing.assert_array_equal(train._merge(split), a)


def test_microbatch_count_follows_the_config_else_the_model():
  config = experiment("cnn_mnist")
  fused, plain = models.CNN(conv_impl="fused"), models.CNN(conv_impl="xla")
  assert train.microbatch_count(config, fused, 200) == 4  # the fused path's 50 examples
  assert train.microbatch_count(config, fused, 256) == 4  # 5 is nearer but does not divide 256
  assert train.microbatch_count(config, fused, 30) == 1
  assert train.microbatch_count(config, plain, 200) == 1
  house = experiment("house_mlp")
  assert train.microbatch_count(house, models.build(house.model), 8) == 1
  config.microbatch_size = 25
  assert train.microbatch_count(config, plain, 200) == 8
  config.microbatch_size = 30
  with pytest.raises(UserError, match="microbatch_size 30 does not divide the batch of 200 examples"):
    train.microbatch_count(config, fused, 200)


def test_epoch_order_is_a_function_of_seed_and_epoch():
  a = loop.epoch_permutation(0, 3, 1000)
  assert np.array_equal(a, loop.epoch_permutation(0, 3, 1000))
  assert sorted(a) == list(range(1000))
  assert not np.array_equal(a, loop.epoch_permutation(0, 4, 1000))
  assert not np.array_equal(a, loop.epoch_permutation(1, 3, 1000))


def test_evaluation_counts_every_example_once_with_a_partial_last_batch():
  inputs = np.arange(23, dtype=np.float32).reshape(23, 1)
  outputs = train.predict_outputs(lambda params, x: x * 2, None, inputs, batch_size=5)
  np.testing.assert_array_equal(outputs, inputs * 2)


def test_checkpoint_restores_identical_predictions(tmp_path, quiet_progress):
  config = experiment("house_mlp", "num_epochs=300")
  summary = train.train_and_evaluate(config, tmp_path)
  _, model, params = train.restore_for_inference(tmp_path)
  dataset = data.load(config.dataset)
  inputs = dataset.encode_inputs(np.array([[110.0, 7.0], [85.0, 12.0]]))
  restored = dataset.decode_outputs(np.asarray(model.apply({"params": params}, inputs))).ravel()
  np.testing.assert_array_equal(restored, [p["prediction"] for p in summary["predictions"]])


def _final_params(workdir):
  return train.restore_for_inference(workdir)[2]


def _assert_same_params(a, b):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_a_longer_run_resumes_where_the_shorter_stopped(tmp_path, quiet_progress):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(experiment("house_mlp", "num_epochs=400"), straight)
  train.train_and_evaluate(experiment("house_mlp", "num_epochs=200"), resumed)
  train.train_and_evaluate(experiment("house_mlp", "num_epochs=400"), resumed)
  _assert_same_params(_final_params(straight), _final_params(resumed))
  assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()


def test_mini_batch_resume_is_exact(tmp_path, quiet_progress):
  overrides = ("dataset.train_examples=64", "dataset.test_examples=32", "batch_size=16", "eval_batch_size=10")
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    train.train_and_evaluate(experiment("cnn_mnist", "num_epochs=2", *overrides), straight)
    train.train_and_evaluate(experiment("cnn_mnist", "num_epochs=1", *overrides), resumed)
    train.train_and_evaluate(experiment("cnn_mnist", "num_epochs=2", *overrides), resumed)
  _assert_same_params(_final_params(straight), _final_params(resumed))
  rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
  assert [(r["epoch"], r["split"]) for r in rows] == [(1, "train"), (1, "test"), (2, "train"), (2, "test")]
  assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()


@pytest.mark.parametrize("name,expected", [("sgd", "sgd"), ("adam", "adam")])
def test_optimizer_is_chosen_by_name(name, expected):
  config = experiment("house_mlp", f"optimizer.name={name}")
  tx = train.make_optimizer(config.optimizer)
  state = tx.init({"w": np.zeros(3, np.float32)})
  # Adam keeps moment estimates; plain SGD keeps nothing per parameter.
  assert (len(jax.tree_util.tree_leaves(state)) > 0) == (expected == "adam")
