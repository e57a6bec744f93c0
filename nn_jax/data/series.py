"""Univariate time series as next-value prediction: windows of past values -> the value that follows.

The split is chronological (the test part is the series' end), the
normalization is fitted on the training part alone, and each test window's
naive forecast "next value = last value" is the reference every model must beat.
"""

import importlib.resources

import numpy as np

from nn_jax.data.dataset import Dataset


def windows(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
  """(N, window, 1) inputs and (N, 1) next values, for every position of the window."""
  starts = np.arange(len(values) - window)
  inputs = values[starts[:, None] + np.arange(window)]
  return inputs[..., None], values[starts + window][:, None]


def windowed_dataset(name: str, values: np.ndarray, window: int, test_fraction: float, unit: str,
                     times: np.ndarray | None = None, time_name: str = "step") -> Dataset:
  """Targets from the last `test_fraction` of the series form the test split; windows may look back into train.
  `times` (default: 0, 1, ...) are the series' time points, kept for plots of each split's targets."""
  values = np.asarray(values, np.float64)
  first_test_target = int(round(len(values) * (1 - test_fraction)))
  train_part = values[:first_test_target]
  mean, std = train_part.mean(), train_part.std()
  scaled = ((values - mean) / std).astype(np.float32)
  inputs, targets = windows(scaled, window)
  is_test = np.arange(len(targets)) + window >= first_test_target
  splits = {"train": (inputs[~is_test], targets[~is_test]), "test": (inputs[is_test], targets[is_test])}
  naive = {split: {"naive_rmse": float(np.sqrt(np.mean((x[:, -1, :] - y) ** 2)) * std)}
           for split, (x, y) in splits.items()}
  target_times = (np.arange(len(values)) if times is None else np.asarray(times))[window:]
  return Dataset(name=name, splits=splits, target_name="next value", target_unit=unit,
                 target_times={"train": target_times[~is_test], "test": target_times[is_test], "name": time_name},
                 encode_inputs=lambda x: ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)[..., None],
                 decode_outputs=lambda y: np.asarray(y, np.float64) * std + mean,
                 target_scale=float(std), reference_metrics=naive)


def read_sunspots() -> tuple[np.ndarray, np.ndarray]:
  """Years 1700..2008 and the yearly sunspot numbers."""
  with importlib.resources.files("nn_jax.data").joinpath("sunspots.csv").open() as f:
    table = np.loadtxt(f, delimiter=",", comments="#", skiprows=4)
  return table[:, 0], table[:, 1]


def load_sunspots(window: int = 10, test_fraction: float = 0.2) -> Dataset:
  years, counts = read_sunspots()
  return windowed_dataset("sunspots", counts, window, test_fraction, unit="sunspots", times=years, time_name="year")


def load_noisy_sine(window: int = 10, test_fraction: float = 0.2, num_points: int = 400,
                    period: float = 25.0, noise: float = 0.1, seed: int = 0) -> Dataset:
  """A sine with Gaussian noise, generated from `seed`: quick to learn, for tests and smoke runs."""
  t = np.arange(num_points)
  values = np.sin(2 * np.pi * t / period) + noise * np.random.default_rng(seed).normal(size=num_points)
  return windowed_dataset("noisy_sine", values, window, test_fraction, unit="")
