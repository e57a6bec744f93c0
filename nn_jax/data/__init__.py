"""Datasets by name. Adding one: a module with `load(**config.dataset) -> Dataset`, registered here."""

import ml_collections

from nn_jax.data import breast_cancer, house_prices, mnist, series
from nn_jax.data.dataset import Dataset

DATASETS = {
    "house_prices": house_prices.load,
    "mnist": mnist.load,
    "breast_cancer": breast_cancer.load,
    "sunspots": series.load_sunspots,
    "noisy_sine": series.load_noisy_sine,
}


def load(dataset_config: ml_collections.ConfigDict) -> Dataset:
  kwargs = {k: v for k, v in dataset_config.items() if k != "name"}
  return DATASETS[dataset_config.name](**kwargs)
