"""Time series as next-value prediction: windows, a chronological split, train-only normalization."""

import numpy as np

from nn_jax.data import series


def test_windows_pair_each_window_with_the_value_that_follows():
  inputs, targets = series.windows(np.arange(15.0), window=10)
  assert inputs.shape == (5, 10, 1) and targets.shape == (5, 1)
  np.testing.assert_array_equal(inputs[2, :, 0], np.arange(2, 12))
  assert targets[2, 0] == 12


def test_split_is_chronological_and_normalization_uses_train_only():
  values = np.arange(100.0) ** 1.5  # trending, so train and whole-series statistics differ
  dataset = series.windowed_dataset("trend", values, window=10, test_fraction=0.2, unit="u")
  y_train, y_test = dataset.splits["train"][1], dataset.splits["test"][1]
  decode = dataset.decode_outputs
  # Test targets are exactly the last 20 values; train targets all come before them.
  np.testing.assert_allclose(decode(y_test).ravel(), values[80:], rtol=1e-5)
  np.testing.assert_allclose(decode(y_train).ravel(), values[10:80], rtol=1e-5, atol=1e-3)
  train_part = values[:80]
  np.testing.assert_allclose(dataset.target_scale, train_part.std())
  np.testing.assert_allclose(decode(np.zeros(1)), train_part.mean())


def test_naive_baseline_is_last_value_rmse_in_units():
  values = np.array([0.0, 1, 2, 3, 4, 5, 10, 20])
  dataset = series.windowed_dataset("toy", values, window=2, test_fraction=0.25, unit="")
  # Test targets 10 and 20 follow last values 5 and 10: errors 5 and 10.
  np.testing.assert_allclose(dataset.reference_metrics["test"]["naive_rmse"], np.sqrt((25 + 100) / 2), rtol=1e-5)


def test_sunspots_are_the_yearly_series_1700_to_2008():
  years, counts = series.read_sunspots()
  assert years[0] == 1700 and years[-1] == 2008 and len(counts) == 309
  dataset = series.load_sunspots()
  assert dataset.splits["train"][0].shape[1:] == (10, 1)
  assert dataset.reference_metrics["test"]["naive_rmse"] > 0


def test_noisy_sine_is_reproducible_from_its_seed():
  a, b = series.load_noisy_sine(seed=1), series.load_noisy_sine(seed=1)
  np.testing.assert_array_equal(a.splits["train"][0], b.splits["train"][0])
  assert not np.array_equal(a.splits["train"][0], series.load_noisy_sine(seed=2).splits["train"][0])
