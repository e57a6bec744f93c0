"""The models' shapes and parameter counts are the article's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_cnn_implementations_share_params_and_agree():
  x = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))
  plain, fast = models.CNN(conv_impl="xla"), models.CNN(conv_impl="patches")
  params = plain.init(jax.random.key(0), x)["params"]
  fast_params = fast.init(jax.random.key(0), x)["params"]
  # The same tree with the same initial values: checkpoints are interchangeable.
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(fast_params)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(fast_params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(fast.apply({"params": params}, x), plain.apply({"params": params}, x), atol=1e-5)
  # And the same gradients, pooling ties included (relu makes many zeros).
  loss = lambda model: lambda p: model.apply({"params": p}, x).sum()
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(fast))(params)),
                  jax.tree_util.tree_leaves(jax.grad(loss(plain))(params))):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_max_pool_drops_odd_edges_like_valid_pooling():
  from flax import linen as nn
  from nn_jax.models.cnn import max_pool_2x2
  x = jax.random.normal(jax.random.key(2), (2, 11, 11, 3))
  np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))


def test_auto_picks_patches_on_cpu_and_xla_elsewhere(monkeypatch):
  from nn_jax.models import cnn
  assert cnn.resolve_conv_impl("auto") == "patches"  # these tests run on CPU
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert cnn.resolve_conv_impl("auto") == "xla"
  assert cnn.resolve_conv_impl("patches") == "patches"


@pytest.mark.parametrize("name,variant,shape", [("cnn_mnist", "", (4, 28, 28, 1)),
                                                ("recurrent_series", ":simple", (4, 10, 1)),
                                                ("recurrent_series", ":lstm", (4, 10, 1)),
                                                ("recurrent_series", ":gru", (4, 10, 1)),
                                                ("fnn_binary", "", (4, 10))])
def test_bfloat16_computes_in_bf16_with_float32_params(name, variant, shape):
  from conftest import ROOT
  from nn_jax import config as config_lib
  config = config_lib.load_config(str(ROOT / "experiments" / f"{name}.py") + variant)
  x = jax.random.normal(jax.random.key(0), shape)
  fp32, bf16 = models.build(config.model), models.build(config.model, "bfloat16")
  params = fp32.init(jax.random.key(1), x)["params"]
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(bf16.init(jax.random.key(1), x)))
  out32, out16 = fp32.apply({"params": params}, x), bf16.apply({"params": params}, x)
  assert out16.dtype == jnp.float32  # the loss sees float32
  assert not np.array_equal(out32, out16)  # but it was computed in bf16 ...
  np.testing.assert_allclose(out16, out32, atol=0.1, rtol=0.1)  # ... to bf16's precision
  # bf16 appears in the computation itself.
  assert "bf16" in jax.jit(lambda p, x: bf16.apply({"params": p}, x)).lower(params, x).as_text()
