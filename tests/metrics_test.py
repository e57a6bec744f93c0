"""Which way a metric is better: declared once for every metric a run records, asked for otherwise."""

import pytest
from conftest import experiment

from nn_jax import data
from nn_jax.ablations import stats
from nn_jax.common import metrics
from nn_jax.common.errors import UserError
from nn_jax.training import stopping, tasks


def test_every_metric_a_run_records_is_declared():
  recorded = {name for task in tasks.TASKS.values() for name in task.metric_names}
  for name in ("recurrent_series", "fnn_binary", "house_mlp"):
    recorded |= {m for split in data.load(experiment(name).dataset).reference_metrics.values() for m in split}
  assert "naive_rmse" in recorded
  assert recorded <= set(metrics.BETTER)
  assert [metrics.better(m) for m in ("test/accuracy", "validation/auc", "test/rmse", "loss")] == ["max", "max", "min",
                                                                                                    "min"]


def test_an_undeclared_metric_is_asked_for_not_guessed():
  # A name-based guess read test/f1 (higher is better) as lower-is-better.
  with pytest.raises(UserError, match="which way 'test/f1' is better is not declared; add 'f1'"):
    stats.against_the_best("test/f1", {"a": {0: 0.9, 1: 0.8}, "b": {0: 0.5, 1: 0.4}})
  with pytest.raises(UserError, match="'test/f1'"):
    stopping.reached("test/f1", 0.9, 0.5)


def test_a_mode_is_the_declared_direction_or_refused():
  assert metrics.mode("test/accuracy") == "max" and metrics.mode("test/loss", "min") == "min"
  with pytest.raises(UserError, match="test/loss is better low"):
    metrics.mode("test/loss", "max")
