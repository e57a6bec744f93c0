"""The trainer: the pure train step, data order, evaluation, checkpoints and resume."""

import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import experiment
from nn_jax import data, loop, models, tasks, train


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
