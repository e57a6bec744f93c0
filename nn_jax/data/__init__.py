"""Datasets by name. Adding one: a module with `load(**config.dataset) -> Dataset`, registered here."""

import ml_collections

from nn_jax.data import house_prices, mnist
from nn_jax.data.dataset import Dataset

DATASETS = {
    "house_prices": house_prices.load,
    "mnist": mnist.load,
}


def load(dataset_config: ml_collections.ConfigDict) -> Dataset:
  kwargs = {k: v for k, v in dataset_config.items() if k != "name"}
  return DATASETS[dataset_config.name](**kwargs)
