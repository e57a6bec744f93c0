"""The benchmark-only recurrences compute what the model's own do, on the same parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nn_jax import bench_recurrences
from nn_jax.models import rnn


@pytest.mark.slow
@pytest.mark.parametrize("cell,recurrence", [(cell, recurrence) for recurrence in ("nn_scan", "unrolled")
                                             for cell in ("simple", "lstm", "gru")] + [("lstm", "fused")])
def test_every_benchmarked_recurrence_gives_the_same_numbers(cell, recurrence):
  window = jax.random.normal(jax.random.key(3), (8, 10, 1))
  targets = jax.random.normal(jax.random.key(4), (8, 1))
  reference = rnn.SequenceRegressor(cell=cell, units=12, activation="relu", recurrence="scan")
  other = bench_recurrences.BenchSequenceRegressor(cell=cell, units=12, activation="relu", recurrence=recurrence)
  params = reference.init(jax.random.key(0), window)["params"]
  other_params = other.init(jax.random.key(0), window)["params"]
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(other_params)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(other_params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(other.apply({"params": params}, window), reference.apply({"params": params}, window),
                             atol=1e-5)
  loss = lambda model: lambda p: jnp.mean((model.apply({"params": p}, window) - targets) ** 2)
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(other))(params)),
                  jax.tree_util.tree_leaves(jax.grad(loss(reference))(params))):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
