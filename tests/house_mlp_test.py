"""The article's house-price MLP: its table, its initialization, its update rule, its predictions."""

import jax
import numpy as np
from conftest import experiment

from benchmarks import numpy_reference
from nn_jax import data, models
from nn_jax.data import house_prices
from nn_jax.training import program, trainer

# The article's table: [size m², age years] -> price in t€.
ARTICLE_X = np.array([[100, 5], [120, 10], [80, 15], [150, 2], [90, 20], [110, 7], [95, 12], [130, 8], [140, 5],
                      [75, 18], [85, 14], [125, 6], [100, 10], [135, 4], [105, 9], [115, 11], [140, 3], [80, 20],
                      [90, 22], [120, 14]], dtype=float)
ARTICLE_Y = np.array([[200], [220], [170], [280], [160], [210], [175], [225], [270], [155], [185], [230], [195],
                      [265], [175], [215], [275], [165], [185], [225]], dtype=float)


def articles_program(seed: int):
  """The article's from-scratch NumPy program, as it is written there; returns its trained weights,
  its final mean squared error on the standardized targets, and its two predictions in t€."""
  np.random.seed(seed)
  X, y = ARTICLE_X.copy(), ARTICLE_Y.copy()
  X_mean, X_std = X.mean(axis=0), X.std(axis=0)
  y_mean, y_std = y.mean(), y.std()
  X_norm, y_norm = (X - X_mean) / X_std, (y - y_mean) / y_std

  def sigmoid(z):
    return 1 / (1 + np.exp(-z))

  W1, b1 = np.random.randn(2, 4), np.ones((1, 4))
  W2, b2 = np.random.randn(4, 1), np.ones((1, 1))
  initial = {"W1": W1.copy(), "b1": b1.copy(), "W2": W2.copy(), "b2": b2.copy()}
  lr = 0.01
  for epoch in range(2000):
    hidden = sigmoid(X_norm @ W1 + b1)
    output = hidden @ W2 + b2
    error = output - y_norm
    loss = np.mean(error ** 2)
    d_output = error / len(X_norm)
    d_hidden = (d_output @ W2.T) * hidden * (1 - hidden)
    W2 -= lr * hidden.T @ d_output
    b2 -= lr * d_output.sum(axis=0, keepdims=True)
    W1 -= lr * X_norm.T @ d_hidden
    b1 -= lr * d_hidden.sum(axis=0, keepdims=True)
  loss = np.mean((sigmoid(X_norm @ W1 + b1) @ W2 + b2 - y_norm) ** 2)
  houses = (np.array([[110, 7], [85, 12]]) - X_mean) / X_std
  predictions = (sigmoid(houses @ W1 + b1) @ W2 + b2) * y_std + y_mean
  return initial, loss, predictions.ravel()


def as_flax_params(weights: dict) -> dict:
  return {"hidden_0": {"kernel": weights["W1"], "bias": weights["b1"].ravel()},
          "output": {"kernel": weights["W2"], "bias": weights["b2"].ravel()}}


def test_the_table_is_the_articles_in_its_order():
  np.testing.assert_array_equal(house_prices.read_table(), np.concatenate([ARTICLE_X, ARTICLE_Y], axis=1))


def test_data_is_standardized_with_population_statistics():
  dataset = house_prices.load()
  x, y = dataset.splits["train"]
  assert x.shape == (20, 2) and y.shape == (20, 1)
  np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-6)
  np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-6)  # ddof=0, the population std
  raw = house_prices.read_table()
  np.testing.assert_allclose(dataset.decode_outputs(y), raw[:, 2:], rtol=1e-6)


def test_the_articles_program_gives_the_articles_numbers():
  _, loss, predictions = articles_program(0)
  np.testing.assert_allclose(predictions, [218.3, 176.3], atol=0.05)
  assert round(loss, 3) == 0.108


def test_the_trainer_from_the_articles_weights_predicts_what_the_article_does(tmp_path, quiet_progress):
  initial, loss, expected = articles_program(0)
  config = experiment("house_mlp")
  summary = trainer.train_and_evaluate(config, tmp_path, initial_params=as_flax_params(initial))
  predicted = [p["prediction"] for p in summary["predictions"]]
  np.testing.assert_allclose(predicted, expected, atol=1e-3, rtol=0)  # t€
  np.testing.assert_allclose(summary["final"]["train"]["mse"], loss, rtol=1e-4)


def test_init_is_the_articles():
  config = experiment("house_mlp")
  state = program.initial_state(config, models.build(config.model), (2,))
  assert np.all(state.params["hidden_0"]["bias"] == 1) and np.all(state.params["output"]["bias"] == 1)
  kernels = np.concatenate([state.params["hidden_0"]["kernel"].ravel(), state.params["output"]["kernel"].ravel()])
  assert 0.3 < kernels.std() < 3  # standard normal, not LeCun's 1/sqrt(fan_in)


def test_2000_epochs_match_the_numpy_update_rule(tmp_path, quiet_progress):
  config = experiment("house_mlp")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  initial = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                   program.initial_state(config, model, dataset.input_shape).params)
  x, y = (a.astype(np.float64) for a in dataset.splits["train"])
  expected = numpy_reference.train_article_mlp(initial, x, y, lr=0.01, epochs=2000)

  trainer.train_and_evaluate(config, tmp_path)
  trained = trainer.restore_for_inference(tmp_path)[2]["params"]
  for layer in expected:
    for name in expected[layer]:
      np.testing.assert_allclose(trained[layer][name], expected[layer][name], atol=1e-5, rtol=0)
  # And training did something: the parameters moved well beyond that tolerance.
  assert np.abs(expected["output"]["kernel"] - initial["output"]["kernel"]).max() > 0.1
