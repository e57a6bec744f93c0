"""Evaluation: one compiled call per split, every example counted once."""

import jax
import numpy as np
from conftest import experiment

from nn_jax import data, models
from nn_jax.common import parallel
from nn_jax.training import evaluation, program, tasks


def test_padding_to_whole_batches():
  batches = evaluation.pad_to_batches(np.arange(23.0).reshape(23, 1), 5)
  assert batches.shape == (5, 5, 1)
  np.testing.assert_array_equal(batches.reshape(-1)[:23], np.arange(23.0))
  assert np.all(batches.reshape(-1)[23:] == 0)


def test_split_metrics_equal_the_whole_split_at_once_on_either_data_path():
  config = experiment("fnn_binary")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  variables = program.initial_state(config, model, dataset.input_shape).variables()
  task = tasks.TASKS[config.loss]
  inputs, targets = dataset.splits["test"]  # 114 examples: batches of 50 leave a partial last one
  expected = task.metrics(model.apply(variables, inputs), targets)
  for on_device in (False, True):
    evaluator = evaluation.Evaluator(model, task, dataset, parallel.make_mesh(), 50, on_device)
    metrics = evaluator.evaluate(variables, ["test"])["test"]
    np.testing.assert_allclose(metrics["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], expected["accuracy"])
    assert 0.0 <= metrics["auc"] <= 1.0


def test_predictions_are_in_the_targets_units(capsys):
  config = experiment("house_mlp")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  variables = program.initial_state(config, model, dataset.input_shape).variables()
  evaluator = evaluation.Evaluator(model, tasks.TASKS[config.loss], dataset, parallel.make_mesh(), 1000, False)
  [record] = evaluator.predict(variables, [[110.0, 7.0]])
  expected = dataset.decode_outputs(np.asarray(model.apply(variables, dataset.encode_inputs(np.array([[110.0, 7.0]])))))
  np.testing.assert_allclose(record["prediction"], expected.ravel()[0], rtol=1e-6)
  assert capsys.readouterr().out.startswith("Predicted price for 110 m², 7 years: ")
  assert jax.tree_util.tree_leaves(variables)
