"""The models' shapes and parameter counts are the article's."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import experiment
from nn_jax import models


def _count(params) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))


def test_cnn_is_the_articles():
  model = models.build(experiment("cnn_mnist").model)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  assert params["conv_0"]["kernel"].shape == (3, 3, 1, 32)
  assert params["conv_1"]["kernel"].shape == (3, 3, 32, 64)
  assert params["dense_0"]["kernel"].shape == (1600, 128)  # valid padding: 28-26-13-11-5, 5*5*64
  assert params["logits"]["kernel"].shape == (128, 10)
  assert _count(params) == 225_034
  assert model.apply({"params": params}, jnp.zeros((7, 28, 28, 1))).shape == (7, 10)


def test_house_mlp_is_2_4_1():
  model = models.build(experiment("house_mlp").model)
  params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
  assert params["hidden_0"]["kernel"].shape == (2, 4) and params["output"]["kernel"].shape == (4, 1)
  assert _count(params) == 17
  # Sigmoid hidden units: the hidden activations of any input lie in (0, 1).
  hidden = jax.nn.sigmoid(jnp.array([[3.0, -2.0]]) @ params["hidden_0"]["kernel"] + params["hidden_0"]["bias"])
  out = model.apply({"params": params}, jnp.array([[3.0, -2.0]]))
  np.testing.assert_allclose(out, hidden @ params["output"]["kernel"] + params["output"]["bias"], rtol=1e-6)
