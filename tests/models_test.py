"""The models' shapes and parameter counts are the article's, and they keep the model contract."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from nn_jax import models
from nn_jax.models.dropout import Dropout


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


@pytest.mark.slow
def test_cnn_implementations_share_params_and_agree():
  x = jax.random.uniform(jax.random.key(1), (200, 28, 28, 1))  # batch 200: the training pass slices it
  plain, fused = models.CNN(conv_impl="xla"), models.CNN(conv_impl="fused")
  params = plain.init(jax.random.key(0), x)["params"]
  fused_params = fused.init(jax.random.key(0), x)["params"]
  # The same tree with the same initial values: checkpoints are interchangeable.
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(fused_params)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(fused_params)):
    np.testing.assert_array_equal(a, b)
  expected = plain.apply({"params": params}, x)
  np.testing.assert_allclose(fused.apply({"params": params}, x), expected, atol=1e-5, rtol=1e-5)
  # The training pass (custom VJP forward) computes the same outputs, and the same gradients.
  loss = lambda model: lambda p: model.apply({"params": p}, x).sum()
  outputs, fused_vjp = jax.vjp(lambda p: fused.apply({"params": p}, x), params)
  np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(fused_vjp(jnp.ones_like(outputs))[0]),
                  jax.tree_util.tree_leaves(jax.grad(loss(plain))(params))):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def _plain_conv_pool_relu(x, kernel, bias):
  from flax import linen as nn
  y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return nn.max_pool(nn.relu(y + bias), (2, 2), strides=(2, 2))


# 4x4-neighbourhood form up to 4 channels, patches above; odd edges are dropped, as VALID pooling does.
CONV_POOL_CASES = [(c, h, w) for c in (1, 3, 32) for h, w in ((28, 28), (13, 13), (11, 12))]


@pytest.mark.parametrize("channels,height,width", [
    case if case == (32, 13, 13) else pytest.param(*case, marks=pytest.mark.slow) for case in CONV_POOL_CASES])
def test_conv_pool_relu_equals_conv_relu_max_pool(channels, height, width):
  from nn_jax.models.conv_pool import conv_pool_relu
  keys = jax.random.split(jax.random.key(channels * height * width), 4)
  x = jax.random.normal(keys[0], (60, height, width, channels))
  # Exact zeros, as after a relu, in 4x4 blocks across all channels: whole pooling windows of
  # equal outputs (ties), whose gradient must go to the first maximum as nn.max_pool sends it.
  blocks = jax.random.uniform(keys[1], (60, -(-height // 4), -(-width // 4), 1)) < 0.5
  x = x * jnp.repeat(jnp.repeat(blocks, 4, axis=1), 4, axis=2)[:, :height, :width]
  kernel, bias = 0.3 * jax.random.normal(keys[2], (3, 3, channels, 8)), jnp.linspace(-0.5, 0.5, 8)
  cotangent = jax.random.normal(keys[3], _plain_conv_pool_relu(x, kernel, bias).shape)

  @functools.partial(jax.jit, static_argnums=0)  # as training compiles it: one program, not an op at a time
  def outputs_and_gradients(function):
    outputs, vjp = jax.vjp(function, x, kernel, bias)
    return outputs, vjp(cotangent)

  expected, expected_gradients = outputs_and_gradients(_plain_conv_pool_relu)
  np.testing.assert_allclose(jax.jit(conv_pool_relu)(x, kernel, bias), expected, atol=1e-5, rtol=1e-5)
  outputs, gradients = outputs_and_gradients(conv_pool_relu)  # the training pass
  np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=1e-5)
  for name, a, b in zip(("x", "kernel", "bias"), gradients, expected_gradients):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)


def test_conv_pool_refuses_shapes_its_gradient_does_not_compute():
  from nn_jax.models.conv_pool import conv_pool_relu, supports
  x = jnp.zeros((2, 12, 12, 3))
  assert supports(x.shape, (3, 3, 3, 8)) and not supports(x.shape, (5, 5, 3, 8))
  assert not supports((2, 3, 3, 3), (3, 3, 3, 8))  # no pooled output
  with pytest.raises(ValueError, match="3x3 kernel"):
    conv_pool_relu(x, jnp.zeros((5, 5, 3, 8)), jnp.zeros(8))
  with pytest.raises(ValueError, match="3x3 kernel"):
    jax.grad(lambda k: conv_pool_relu(x, k, jnp.zeros(8)).sum())(jnp.zeros((5, 5, 3, 8)))


def test_auto_picks_fused_on_cpu_and_xla_elsewhere():
  from nn_jax.models import cnn
  assert cnn.resolve_conv_impl("auto", backend="cpu") == "fused"
  assert cnn.resolve_conv_impl("auto", backend="gpu") == "xla"
  assert cnn.resolve_conv_impl("fused", backend="gpu") == "fused"
  assert cnn.resolve_conv_impl("fused", batch_norm=True, backend="cpu") == "xla"


@pytest.mark.slow
def test_bn_dropout_cnn_is_keras_mnist_example():
  model = models.build(experiment("cnn_mnist:bn_dropout").model)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  assert set(variables) == {"params", "batch_stats"}
  assert "bias" not in variables["params"]["conv_0"]  # BatchNorm's offset replaces it
  assert variables["batch_stats"]["batch_norm_1"]["mean"].shape == (64,)
  assert model.rng_streams == ("dropout",)
  x = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))
  rngs = {"dropout": jax.random.key(2)}
  trained, updates = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
  inferred = model.apply(variables, x)  # train=False: running averages, no dropout, no RNG needed
  assert not np.allclose(trained, inferred)
  assert not np.allclose(updates["batch_stats"]["batch_norm_0"]["mean"], 0)


class _Dropped(nn.Module):
  """Dense then dropout, as a model uses it: the dropout's scope name decides its RNG key."""
  layer: type
  rate: object

  @nn.compact
  def __call__(self, x):
    return self.layer(self.rate)(nn.Dense(64)(x), deterministic=False)


def test_dropout_with_a_constant_or_an_array_rate_is_nn_dropouts():
  x = jax.random.normal(jax.random.key(0), (32, 8))
  rngs = {"dropout": jax.random.key(1)}
  variables = _Dropped(nn.Dropout, 0.5).init({"params": jax.random.key(2), **rngs}, x)
  compiled = lambda layer: jax.jit(lambda rate: _Dropped(layer, rate).apply(variables, x, rngs=rngs), static_argnums=0)
  traced = jax.jit(lambda rate: _Dropped(Dropout, rate).apply(variables, x, rngs=rngs))
  for rate in (0.0, 0.25, 0.5):  # 1 - rate exact in float32: the array rate matches bit for bit too
    expected = compiled(nn.Dropout)(rate)
    np.testing.assert_array_equal(compiled(Dropout)(rate), expected)
    np.testing.assert_array_equal(traced(jnp.float32(rate)), expected)
  # Runs of one program, each with its own rate: each gets its own share of zeros.
  dropped = jax.vmap(traced)(jnp.array([0.1, 0.6], jnp.float32))
  assert [round(float(jnp.mean(d == 0)), 1) for d in dropped] == [0.1, 0.6]


@pytest.mark.parametrize("name", ["house_mlp", "cnn_mnist", pytest.param("fnn_binary", marks=pytest.mark.slow),
                                  pytest.param("recurrent_series:lstm", marks=pytest.mark.slow)])
def test_every_model_takes_the_train_flag_and_names_its_rng_streams(name):
  config = experiment(name)
  model = models.build(config.model)
  assert isinstance(type(model).rng_streams, tuple)
  fields = {f.name: f.type for f in dataclasses.fields(model)}
  assert all(fields[field] is float for field in models.run_axis_fields(type(model)))
  shape = {"house_mlp": (2, 2), "fnn_binary": (2, 10), "cnn_mnist": (2, 28, 28, 1), "recurrent_series:lstm": (2, 10, 1)}
  x = jnp.ones(shape[name])
  variables = model.init(jax.random.key(0), x)
  np.testing.assert_array_equal(model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)}),
                                model.apply(variables, x, train=False))  # no dropout or BatchNorm here


@pytest.mark.slow
@pytest.mark.parametrize("name,variant,shape", [("cnn_mnist", "", (4, 28, 28, 1)),
                                                ("cnn_mnist", ":bn_dropout", (4, 28, 28, 1)),
                                                ("recurrent_series", ":simple", (4, 10, 1)),
                                                ("recurrent_series", ":lstm", (4, 10, 1)),
                                                ("recurrent_series", ":gru", (4, 10, 1)),
                                                ("fnn_binary", "", (4, 10))])
def test_bfloat16_computes_in_bf16_with_float32_params(name, variant, shape):
  config = experiment(name + variant)
  x = jax.random.normal(jax.random.key(0), shape)
  fp32, bf16 = models.build(config.model), models.build(config.model, "bfloat16")
  variables = fp32.init(jax.random.key(1), x)
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(bf16.init(jax.random.key(1), x)))
  out32, out16 = fp32.apply(variables, x), bf16.apply(variables, x)
  assert out16.dtype == jnp.float32  # the loss sees float32
  assert not np.array_equal(out32, out16)  # but it was computed in bf16 ...
  np.testing.assert_allclose(out16, out32, atol=0.1, rtol=0.1)  # ... to bf16's precision
  # bf16 appears in the computation itself.
  assert "bf16" in jax.jit(bf16.apply).lower(variables, x).as_text()
