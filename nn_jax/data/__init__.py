"""Datasets by name. Adding one: a module with `load(**config.dataset) -> Dataset` and one `Spec` here.

A Spec says what config validation needs to know before anything is loaded:
the task kind the targets are for, the input shape a config's fields give, how
many outputs a model needs, and the checks of the dataset's own fields.
"""

import dataclasses
import importlib
from typing import Callable

import ml_collections
import numpy as np

from nn_jax.common import user_files
from nn_jax.common.errors import UserError
from nn_jax.data.dataset import Dataset


def _fraction(fields: dict) -> None:
  value = fields.get("test_fraction", 0.2)
  if not 0 < value < 1:
    raise UserError(f"config.dataset.test_fraction must lie strictly between 0 and 1, got {value}")


def _window(fields: dict) -> None:
  _fraction(fields)
  if fields.get("window", 10) < 1:
    raise UserError(f"config.dataset.window must be at least 1 step, got {fields.get('window')}")
  if fields.get("num_points", 400) <= fields.get("window", 10) + 1:
    raise UserError(f"config.dataset.num_points {fields.get('num_points')} leaves no windows of "
                    f"{fields.get('window')} steps; use more points or a shorter window")


def _examples(fields: dict) -> None:
  for key in ("train_examples", "test_examples"):
    if fields.get(key, 0) < 0:
      raise UserError(f"config.dataset.{key} must be >= 0 (0 = all), got {fields[key]}")


@dataclasses.dataclass(frozen=True)
class Spec:
  load: Callable[..., Dataset]
  kind: str  # the task kind its targets are for: regression, binary or multiclass
  input_shape: Callable[[dict], tuple]  # one example's input shape, from the config's dataset fields
  outputs: int  # the outputs a model needs: 1 value or logit, or one logit per class
  check: Callable[[dict], None] = lambda fields: None  # raises UserError on a bad field
  splits: tuple = ("train", "test")


def _loader(module: str, function: str = "load") -> Callable[..., Dataset]:
  """nn_jax.data.<module>.<function>, imported when a run loads it: scikit-learn and TFDS are imported
  only by the datasets that need them."""
  return lambda **fields: getattr(importlib.import_module(f"nn_jax.data.{module}"), function)(**fields)


DATASETS = {
    "house_prices": Spec(_loader("house_prices"), "regression", lambda f: (2,), 1, splits=("train",)),
    "mnist": Spec(_loader("mnist"), "multiclass", lambda f: (28, 28, 1), 10, _examples),
    "breast_cancer": Spec(_loader("breast_cancer"), "binary", lambda f: (10,), 1, _fraction),
    "sunspots": Spec(_loader("series", "load_sunspots"), "regression", lambda f: (f.get("window", 10), 1), 1,
                     _window),
    "noisy_sine": Spec(_loader("series", "load_noisy_sine"), "regression", lambda f: (f.get("window", 10), 1), 1,
                       _window),
}


VALIDATION_FIELDS = ("validation_fraction", "validation_seed")


def spec(name: str) -> Spec:
  """The dataset `config.dataset.name` names: a built-in's name or `path/to/file.py:NAME`, a Spec there."""
  return user_files.builtin_or_named(name, DATASETS, "config.dataset.name", lambda found: isinstance(found, Spec),
                                     "an nn_jax.data.Spec(load=..., kind=..., input_shape=..., outputs=...)")


def fields(dataset_config: ml_collections.ConfigDict) -> dict:
  return {k: v for k, v in dataset_config.items() if k != "name"}


def load(dataset_config: ml_collections.ConfigDict) -> Dataset:
  loader_fields = {k: v for k, v in fields(dataset_config).items() if k not in VALIDATION_FIELDS}
  dataset = spec(dataset_config.name).load(**loader_fields)
  return with_validation(dataset, dataset_config.get("validation_fraction", 0.0),
                         dataset_config.get("validation_seed", 0))


def with_validation(dataset: Dataset, fraction: float, seed: int) -> Dataset:
  """`dataset` with a "validation" split carved from its training split: `fraction` of it, chosen by
  `seed` (a time series: its last part, so validation follows training in time). The scaling the loader
  fitted on the whole training split is kept."""
  if not fraction:
    return dataset
  inputs, targets = dataset.splits["train"]
  count = max(1, int(round(len(inputs) * fraction)))
  if count >= len(inputs):
    raise UserError(f"config.dataset.validation_fraction {fraction} leaves no training examples of {len(inputs)}")
  if dataset.target_times:
    is_validation = np.arange(len(inputs)) >= len(inputs) - count
  else:
    is_validation = np.zeros(len(inputs), bool)
    is_validation[np.random.default_rng(seed).permutation(len(inputs))[:count]] = True
  splits = {"train": (inputs[~is_validation], targets[~is_validation]),
            "validation": (inputs[is_validation], targets[is_validation]),
            **{name: split for name, split in dataset.splits.items() if name != "train"}}
  times = dict(dataset.target_times)
  if "train" in times:
    times["validation"], times["train"] = times["train"][is_validation], times["train"][~is_validation]
  return dataclasses.replace(dataset, splits=splits, target_times=times)
