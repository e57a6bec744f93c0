"""Each run kind's pictures: written, the right size, not blank, the same pixels every time."""

import matplotlib.image
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import experiment

from nn_jax.data import series
from nn_jax.data.dataset import Dataset
from nn_jax.training import trainer
from nn_jax.workdir import pictures


def _check_png(path, min_width=400):
  image = matplotlib.image.imread(path)
  assert image.shape[1] >= min_width and image.shape[0] >= 300
  assert image[..., :3].std() > 0.05  # drawn on: not a blank canvas


def test_digits_confusion_matrix_and_the_worst_mistakes(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.random((200, 28, 28, 1), dtype=np.float32)
  labels = rng.integers(0, 10, 200)
  logits = rng.normal(size=(200, 10)).astype(np.float32)
  assert pictures.digits(images, labels, logits, tmp_path) == ["confusion.png", "worst.png"]
  for name in ("confusion.png", "worst.png"):
    _check_png(tmp_path / name)
  first = (tmp_path / "worst.png").read_bytes()
  pictures.digits(images, labels, logits, tmp_path)
  assert (tmp_path / "worst.png").read_bytes() == first  # deterministic


def test_roc_curve(tmp_path):
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, (100, 1)).astype(np.float32)
  pictures.roc(labels, labels * 2 - 1 + rng.normal(size=(100, 1)), tmp_path)
  _check_png(tmp_path / "roc.png")


def test_forecast_against_the_series_and_the_naive_baseline(tmp_path):
  dataset = series.load_sunspots()
  assert dataset.target_times["name"] == "year" and dataset.target_times["test"][-1] == 2008
  inputs, targets = dataset.splits["test"]
  pictures.forecast(dataset, targets + 0.1, tmp_path)
  _check_png(tmp_path / "forecast.png", min_width=600)


def test_house_price_by_size_with_the_houses(tmp_path):
  sizes = np.linspace(60, 160, 60)
  pictures.house_prices({age: 35 + 1.8 * sizes - 1.5 * age for age in (2, 10, 20)}, tmp_path)
  _check_png(tmp_path / "price_by_size.png")


@pytest.mark.parametrize("kind,inputs_shape,classes,expected", [
    ("multiclass", (40, 12, 12, 1), 5, ["confusion.png", "worst.png"]),  # images
    ("multiclass", (40, 6), 5, []),  # feature vectors: no image to show
    ("binary", (40, 6), 1, ["roc.png"]),
    ("regression", (40, 6), 1, []),
])
def test_a_dataset_of_ones_own_gets_the_pictures_of_its_kind(tmp_path, kind, inputs_shape, classes, expected):
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 2 if kind == "binary" else classes, (40, 1) if classes == 1 else 40)
  dataset = Dataset(name="mine", splits={"test": (rng.random(inputs_shape), labels)})
  outputs = {"test_outputs": rng.normal(size=(40, classes)).astype(np.float32)}
  assert pictures.draw(tmp_path, dataset, outputs, kind) == expected
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [("house_mlp", ["price_by_size.png"]), ("fnn_binary", ["roc.png"]),
                                           ("recurrent_series", ["forecast.png"]),
                                           ("cnn_mnist", ["confusion.png", "worst.png"])])
def test_every_run_draws_its_pictures(tmp_path, quiet_progress, name, expected):
  overrides = {"cnn_mnist": ("dataset.train_examples=64", "dataset.test_examples=64", "batch_size=16")}.get(name, ())
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    trainer.train_and_evaluate(experiment(name, "num_epochs=2", *overrides), tmp_path)
  for picture in expected:
    _check_png(tmp_path / picture)
