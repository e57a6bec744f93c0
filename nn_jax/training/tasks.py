"""Loss and metrics per task kind, keyed by the loss name that `config.loss` gives.

`metrics` runs inside the jitted train step on a batch and on a whole split
at evaluation; `split_metrics` adds what only makes sense on a whole split
(ROC AUC, errors in the target's own units) and runs on the host.
"""

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class Task:
  kind: str  # what targets it is for: regression, binary or multiclass (the dataset's kind)
  loss: Callable  # (outputs, targets) -> scalar mean over the batch
  metrics: Callable  # (outputs, targets) -> {"loss": ..., ...}
  metric_names: tuple[str, ...]  # every metric an evaluated split gets (metrics and split metrics)
  split_metrics: Callable = lambda outputs, targets, target_scale: {}
  # The learning curve that loss.png shows: (metric name, y-axis label).
  curve: tuple[str, str] = ("loss", "Loss")


def _half_mse(outputs, targets):
  return 0.5 * jnp.mean((outputs - targets) ** 2)


def _mse(outputs, targets):
  return jnp.mean((outputs - targets) ** 2)


def _half_mse_metrics(outputs, targets):
  # The article trains on half the MSE (its update rule) but reports the MSE itself.
  return {"loss": _half_mse(outputs, targets), "mse": _mse(outputs, targets)}


def _mse_metrics(outputs, targets):
  return {"loss": _mse(outputs, targets)}


def _rmse_in_units(outputs, targets, target_scale):
  return {"rmse": float(np.sqrt(np.mean((outputs - targets) ** 2)) * target_scale)}


def _binary_loss(logits, labels):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits.reshape(-1), labels.reshape(-1)))


def _binary_metrics(logits, labels):
  hits = (logits.reshape(-1) > 0) == (labels.reshape(-1) > 0.5)
  return {"loss": _binary_loss(logits, labels), "accuracy": jnp.mean(hits)}


def _roc_auc(logits, labels, target_scale):
  labels = np.asarray(labels).reshape(-1)
  if labels.min() == labels.max():  # undefined with one class present
    return {}
  from sklearn import metrics as sk_metrics  # scikit-learn loads for the runs that report an AUC
  return {"auc": float(sk_metrics.roc_auc_score(labels, np.asarray(logits).reshape(-1)))}


def _multiclass_loss(logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _multiclass_metrics(logits, labels):
  return {"loss": _multiclass_loss(logits, labels), "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


TASKS = {
    # Half the mean squared error: its gradient is the article's update rule.
    "half_mse": Task("regression", _half_mse, _half_mse_metrics, ("loss", "mse", "rmse"), _rmse_in_units,
                     curve=("mse", "Loss (MSE)")),
    "mse": Task("regression", _mse, _mse_metrics, ("loss", "rmse"), _rmse_in_units, curve=("loss", "Loss (MSE)")),
    "sigmoid_binary_cross_entropy": Task("binary", _binary_loss, _binary_metrics, ("loss", "accuracy", "auc"),
                                         _roc_auc, curve=("loss", "Loss (binary cross-entropy)")),
    "softmax_cross_entropy": Task("multiclass", _multiclass_loss, _multiclass_metrics, ("loss", "accuracy"),
                                  curve=("loss", "Loss (categorical cross-entropy)")),
}
