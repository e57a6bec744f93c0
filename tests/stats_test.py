"""Means with Student-t intervals and paired comparisons over seeds."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from nn_jax.ablations import stats


def test_the_interval_is_student_t():
  mean, lower, upper = stats.interval([1.0, 2.0, 3.0])
  assert mean == 2.0
  assert upper - mean == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
  assert stats.interval([5.0]) == (5.0, 5.0, 5.0)


def test_a_consistent_paired_gain_is_distinguishable_where_unpaired_noise_would_hide_it():
  seeds = range(5)
  base = {s: 0.90 + 0.02 * s for s in seeds}  # seeds differ a lot ...
  better = {s: base[s] + 0.005 + 0.0001 * s for s in seeds}  # ... the gain hardly at all
  comparison = stats.compare("test/accuracy", "base", base, "better", better)
  assert comparison.better == "better" and comparison.distinguishable and comparison.p_value < 0.001
  assert "better vs base: test/accuracy +0.0052" in comparison.verdict("test/accuracy")
  assert comparison.verdict("test/accuracy").endswith("better is higher.")


def test_noise_is_not_distinguishable_and_the_verdict_says_so():
  rng = np.random.default_rng(0)
  a = {s: float(rng.normal(20, 1)) for s in range(3)}
  b = {s: float(rng.normal(20, 1)) for s in range(3)}
  comparison = stats.compare("test/rmse", "a", a, "b", b)
  assert not comparison.distinguishable
  assert comparison.verdict("test/rmse").endswith("not distinguishable at 3 seeds.")
  # rmse: lower is better, so the point with the lower mean is named first
  assert np.mean(list((a if comparison.better == "a" else b).values())) <= np.mean(list(a.values()) + list(b.values()))


def test_only_shared_seeds_are_paired_and_every_point_meets_the_best():
  values = {"p": {0: 0.9, 1: 0.91}, "q": {0: 0.95, 1: 0.96, 2: 0.97}, "r": {5: 0.5}}
  comparisons = stats.against_the_best("test/accuracy", values)
  assert {(c.better, c.other, c.seeds) for c in comparisons} == {("q", "p", 2), ("q", "r", 0)}
  assert "not distinguishable at 0 seeds" in [c for c in comparisons if c.other == "r"][0].verdict("test/accuracy")
