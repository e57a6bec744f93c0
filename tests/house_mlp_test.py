"""The article's house-price MLP: faithful to the article's NumPy update rule."""

import jax
import numpy as np

from conftest import experiment
from nn_jax import data, models, numpy_reference, train
from nn_jax.data import house_prices


def test_data_is_standardized_with_population_statistics():
  dataset = house_prices.load()
  x, y = dataset.splits["train"]
  assert x.shape == (20, 2) and y.shape == (20, 1)
  np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-6)
  np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-6)  # ddof=0, the population std
  raw = house_prices.read_table()
  np.testing.assert_allclose(dataset.decode_outputs(y), raw[:, 2:], rtol=1e-6)


def test_init_is_the_articles():
  config = experiment("house_mlp")
  state = train.initial_state(config, models.build(config.model), (2,))
  assert np.all(state.params["hidden_0"]["bias"] == 1) and np.all(state.params["output"]["bias"] == 1)
  kernels = np.concatenate([state.params["hidden_0"]["kernel"].ravel(), state.params["output"]["kernel"].ravel()])
  assert 0.3 < kernels.std() < 3  # standard normal, not LeCun's 1/sqrt(fan_in)


def test_2000_epochs_match_the_numpy_update_rule(tmp_path, quiet_progress):
  config = experiment("house_mlp")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  initial = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                   train.initial_state(config, model, dataset.input_shape).params)
  x, y = (a.astype(np.float64) for a in dataset.splits["train"])
  expected = numpy_reference.train_article_mlp(initial, x, y, lr=0.01, epochs=2000)

  train.train_and_evaluate(config, tmp_path)
  _, _, trained = train.restore_for_inference(tmp_path)
  for layer in expected:
    for name in expected[layer]:
      np.testing.assert_allclose(trained[layer][name], expected[layer][name], atol=1e-5, rtol=0)
  # And training did something: the parameters moved well beyond that tolerance.
  assert np.abs(expected["output"]["kernel"] - initial["output"]["kernel"]).max() > 0.1
