"""Losses and metrics of each task kind."""

import jax.numpy as jnp
import numpy as np

from nn_jax.training import tasks


def test_half_mse_is_half_of_mse():
  out, y = jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])
  assert float(tasks.TASKS["half_mse"].loss(out, y)) == 1.25
  assert float(tasks.TASKS["mse"].loss(out, y)) == 2.5


def test_rmse_is_reported_in_the_targets_units():
  metrics = tasks.TASKS["mse"].split_metrics(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 10.0)
  np.testing.assert_allclose(metrics["rmse"], np.sqrt(2.5) * 10.0)


def test_multiclass_accuracy_and_loss():
  logits = jnp.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
  metrics = tasks.TASKS["softmax_cross_entropy"].metrics(logits, jnp.array([0, 1, 1]))
  np.testing.assert_allclose(metrics["accuracy"], 2 / 3)
  assert float(metrics["loss"]) > 0


def test_binary_metrics_use_logits():
  logits, labels = jnp.array([[2.0], [-1.0], [0.5], [-3.0]]), jnp.array([[1.0], [0.0], [0.0], [0.0]])
  task = tasks.TASKS["sigmoid_binary_cross_entropy"]
  np.testing.assert_allclose(task.metrics(logits, labels)["accuracy"], 0.75)
  assert task.split_metrics(np.asarray(logits), np.asarray(labels), 1.0)["auc"] == 1.0
  # Stable for large logits, where a sigmoid-then-log would give inf.
  assert np.isfinite(float(task.loss(jnp.array([[100.0]]), jnp.array([[0.0]]))))
