"""Which way each metric is better, declared once: early stopping, the best checkpoint, the time to
target and the reports all read it here.

A metric is named "split/name" (test/accuracy) or by its name alone. Every metric a task reports
(nn_jax/training/tasks.py) and every reference metric of a dataset is declared below; a metric that is not
is refused where its direction matters, never guessed from its name.
"""

from nn_jax.common.errors import UserError

BETTER = {
    "loss": "min",
    "mse": "min",
    "rmse": "min",
    "naive_rmse": "min",  # the naive forecast's, a reference to beat (nn_jax/data/series.py)
    "accuracy": "max",
    "auc": "max",
}


def better(metric: str) -> str:
  """"max" or "min": which way `metric` is better; UserError when it is not declared."""
  name = metric.split("/")[-1]
  if name not in BETTER:
    raise UserError(f"which way {metric!r} is better is not declared; add {name!r}: 'max' or 'min' to BETTER in "
                    f"nn_jax/common/metrics.py")
  return BETTER[name]


def higher_is_better(metric: str) -> bool:
  return better(metric) == "max"


def mode(metric: str, given: str = "auto") -> str:
  """The direction a config key ("auto", "max" or "min") asks of `metric`: its declared one. A key that
  names the other direction contradicts the declaration: UserError, naming `metric`."""
  if given not in ("auto", "max", "min"):
    raise UserError(f"a metric's mode must be 'auto', 'max' or 'min', got {given!r}")
  declared = better(metric)
  if given not in ("auto", declared):
    raise UserError(f"{metric} is better {'high' if declared == 'max' else 'low'} "
                    f"({declared!r}, nn_jax/common/metrics.py), not {given!r}; leave the mode 'auto'")
  return declared
