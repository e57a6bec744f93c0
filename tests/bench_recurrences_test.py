"""The benchmark-only recurrences compute what the model's own do, on the same parameters."""

import jax
import pytest
from conftest import assert_same_function

from benchmarks import recurrences
from nn_jax.models import rnn


@pytest.mark.slow
@pytest.mark.parametrize("cell,recurrence", [(cell, recurrence) for recurrence in ("nn_scan", "unrolled")
                                             for cell in ("simple", "lstm", "gru")] + [("lstm", "fused")])
def test_every_benchmarked_recurrence_gives_the_same_numbers(cell, recurrence):
  window = jax.random.normal(jax.random.key(3), (8, 10, 1))
  targets = jax.random.normal(jax.random.key(4), (8, 1))
  assert_same_function(rnn.SequenceRegressor(cell=cell, units=12, activation="relu", recurrence="scan"),
                       recurrences.BenchSequenceRegressor(cell=cell, units=12, activation="relu",
                                                                recurrence=recurrence), window, targets)
