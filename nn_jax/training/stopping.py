"""When a run stops before its last epoch: early stopping on an evaluated metric, or on reaching the target.

  config.stop.metric     "validation/loss", "test/accuracy", ...: watched at each evaluation ("": off)
  config.stop.mode       "auto": the metric's declared direction (nn_jax/common/metrics.py)
  config.stop.patience   evaluations without an improvement of more than stop.min_delta before stopping
  config.stop.at_target  stop once config.target_metric reaches config.target_value
Its state (the best value, its epoch and step, evaluations since) travels in every checkpoint, so a run
killed and resumed stops exactly where an uninterrupted one does. The runs of one program stop each
on its own: a stopped run's state is frozen while the others go on. A search's successive halving
(nn_jax/ablations/halving.py) stops its weaker trials the same way, at its rungs.
"""

import dataclasses
import math

from nn_jax.common import metrics


def reached(metric: str, value: float, target: float) -> bool:
  """Whether `value` of `metric` is at least as good as `target` (higher or lower, by the metric)."""
  return value >= target if metrics.higher_is_better(metric) else value <= target


@dataclasses.dataclass
class Stopper:
  metric: str = ""
  mode: str = "min"
  patience: int = 0
  min_delta: float = 0.0
  target_metric: str = ""  # with at_target
  target_value: float = 0.0
  best: float | None = None
  best_epoch: int = 0
  best_step: int = 0
  waited: int = 0  # evaluations since the last improvement
  stopped: dict | None = None  # {"reason", "epoch", "step"} once stopped; a search's halving adds "rung"

  @classmethod
  def from_config(cls, config, state: dict | None = None) -> "Stopper":
    mode = metrics.mode(config.stop.metric, config.stop.mode) if config.stop.metric else "min"
    stopper = cls(metric=config.stop.metric, mode=mode, patience=config.stop.patience,
                  min_delta=config.stop.min_delta,
                  target_metric=config.target_metric if config.stop.at_target else "",
                  target_value=config.target_value)
    for key, value in (state or {}).items():
      setattr(stopper, key, value)
    return stopper

  def state(self) -> dict:
    """What a checkpoint keeps of it."""
    return {"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step, "waited": self.waited,
            "stopped": self.stopped}

  def update(self, epoch: int, step: int, ranked: dict) -> bool:
    """Takes one evaluation's metrics ({"validation/loss": ...}); returns True when the run stops here."""
    if self.stopped:
      return True
    if self.target_metric and self.target_metric in ranked and reached(self.target_metric, ranked[self.target_metric],
                                                                        self.target_value):
      self.stopped = {"reason": f"{self.target_metric} reached {self.target_value}", "epoch": epoch, "step": step}
      return True
    if self.metric and self.metric in ranked:
      value = ranked[self.metric]
      sign = 1 if self.mode == "max" else -1
      if self.best is None or sign * (value - self.best) > self.min_delta or math.isnan(self.best):
        self.best, self.best_epoch, self.best_step, self.waited = value, epoch, step, 0
      else:
        self.waited += 1
        if self.patience and self.waited >= self.patience:
          self.stopped = {"reason": f"{self.metric} did not improve by more than {self.min_delta} in {self.waited} "
                                    f"evaluations (best {self.best:.6g} at epoch {self.best_epoch})",
                          "epoch": epoch, "step": step}
          return True
    return False

  def summary(self) -> dict:
    """For summary.json: why and where it stopped, and the best evaluation."""
    result = {}
    if self.stopped:
      result["halted" if "rung" in self.stopped else "stopped_early"] = self.stopped
    if self.metric and self.best is not None:
      result["best"] = {"metric": self.metric, "value": self.best, "epoch": self.best_epoch, "step": self.best_step}
    return result
