"""What a handful of seeds can and cannot say: means with Student-t intervals, and paired comparisons.

Two grid points trained on the same seeds are compared seed by seed (the
paired difference cancels what a seed does to both), with a 95% interval and a
paired t-test; the verdict says "not distinguishable at n seeds" whenever that
interval holds zero.
"""

import dataclasses

import numpy as np

from nn_jax.common import metrics

LEVEL = 0.95


def interval(values) -> tuple[float, float, float]:
  """(mean, lower, upper) of the mean's 95% Student-t interval; with one value, the value itself."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if len(values) < 2:
    return mean, mean, mean
  from scipy import stats as scipy_stats  # SciPy loads when statistics are computed (a report)
  half = scipy_stats.t.ppf((1 + LEVEL) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
  return mean, mean - half, mean + half


@dataclasses.dataclass(frozen=True)
class Comparison:
  better: str  # the point with the better mean
  other: str
  seeds: int  # seeds both points were trained on
  difference: float  # better minus other, mean over those seeds
  lower: float
  upper: float
  p_value: float  # paired t-test, two-sided; nan below 2 seeds

  @property
  def distinguishable(self) -> bool:
    return self.seeds >= 2 and not self.lower <= 0 <= self.upper

  def verdict(self, metric: str) -> str:
    interval_text = f"95% CI {self.lower:+.4g} to {self.upper:+.4g}" if self.seeds >= 2 else "no interval"
    test = f"paired t-test p = {self.p_value:.2g}" if self.seeds >= 2 else f"{self.seeds} shared seed"
    head = f"{self.better} vs {self.other}: {metric} {self.difference:+.4g} ({interval_text}; {test}, n = {self.seeds})"
    if self.distinguishable:
      return f"{head}: {self.better} is {'higher' if self.difference > 0 else 'lower'}."
    return f"{head}: not distinguishable at {self.seeds} seeds."


def compare(metric: str, a: str, a_by_seed: dict, b: str, b_by_seed: dict) -> Comparison:
  """Paired comparison of two points' final `metric`, seed by seed over the seeds both have."""
  seeds = sorted(set(a_by_seed) & set(b_by_seed))
  diffs = np.array([a_by_seed[s] - b_by_seed[s] for s in seeds], np.float64)
  mean = float(diffs.mean()) if len(diffs) else float("nan")
  sign = 1 if metrics.higher_is_better(metric) else -1
  if sign * mean < 0:  # name the better point first
    a, b, diffs, mean = b, a, -diffs, -mean
  if len(diffs) >= 2:
    _, lower, upper = interval(diffs)
    from scipy import stats as scipy_stats
    p_value = float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue) if diffs.std() > 0 else float(mean == 0)
  else:
    lower = upper = mean
    p_value = float("nan")
  return Comparison(a, b, len(diffs), mean, lower, upper, p_value)


def against_the_best(metric: str, values_by_point: dict[str, dict]) -> list[Comparison]:
  """Every point compared with the point whose mean is best (`values_by_point`: {point: {seed: value}})."""
  means = {point: np.mean(list(values.values())) for point, values in values_by_point.items() if values}
  if len(means) < 2:
    return []
  best = (max if metrics.higher_is_better(metric) else min)(means, key=means.get)
  return [compare(metric, best, values_by_point[best], point, values_by_point[point])
          for point in values_by_point if point != best]
