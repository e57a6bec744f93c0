"""2x2 max-pooling with a scatter-free gradient: nn.max_pool's values and gradients, ties included."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nn_jax.models import pooling


@pytest.mark.parametrize("shape", [pytest.param((2, 6, 8, 3), marks=pytest.mark.slow),
                                   (1, 7, 5, 2)])  # even, and odd sides that VALID pooling crops
def test_values_and_gradients_equal_nn_max_pool_with_ties(shape):
  # small integers, then relu: most windows hold ties (equal values, many zeros)
  x = jax.nn.relu(jax.random.randint(jax.random.key(0), shape, -2, 3).astype(jnp.float32))
  g = jax.random.normal(jax.random.key(1), (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(pooling.max_pool_2x2(x), reference(x))
  ours = jax.vjp(pooling.max_pool_2x2, x)[1](g)[0]
  theirs = jax.vjp(reference, x)[1](g)[0]  # select_and_scatter: each window's first maximum
  np.testing.assert_array_equal(ours, theirs)
  assert (ours != 0).sum() == (g != 0).sum()  # one position per window, even where values tie


def test_the_gradient_has_no_scatter():
  x = jnp.ones((2, 4, 4, 3))
  ours = str(jax.make_jaxpr(jax.grad(lambda x: pooling.max_pool_2x2(x).sum()))(x))
  theirs = str(jax.make_jaxpr(jax.grad(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)).sum()))(x))
  assert "scatter" not in ours and "select_and_scatter" in theirs


@pytest.mark.slow
def test_the_cnn_pooling_either_way_trains_the_same():
  from nn_jax.models.cnn import CNN
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  labels = jnp.arange(4)
  models = [CNN(conv_impl="xla", pool=pool) for pool in ("reduce_window", "first_max")]
  params = models[0].init(jax.random.key(1), x)["params"]
  loss = lambda model: lambda p: -jnp.take_along_axis(jax.nn.log_softmax(model.apply({"params": p}, x)),
                                                      labels[:, None], axis=1).mean()
  grads = [jax.grad(loss(model))(params) for model in models]
  jaxprs = [str(jax.make_jaxpr(jax.grad(loss(model)))(params)) for model in models]
  assert "select_and_scatter" in jaxprs[0] and "select_and_scatter" not in jaxprs[1]
  for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
