"""The binary classifier's data: ten features, a stratified split, standardization fitted on train."""

import numpy as np

from nn_jax.data import breast_cancer


def test_ten_mean_features_and_a_stratified_split():
  dataset = breast_cancer.load()
  (x_train, y_train), (x_test, y_test) = dataset.splits["train"], dataset.splits["test"]
  assert x_train.shape[1] == 10 and len(x_train) + len(x_test) == 569
  assert all(name.startswith("mean_") for name in dataset.input_names)
  assert abs(y_train.mean() - y_test.mean()) < 0.01  # stratified: the same share of benign
  np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-5)
  assert np.abs(x_test.mean(axis=0)).max() > 1e-3  # test scaled with train statistics, not its own


def test_split_is_fixed_by_split_seed():
  a, b = breast_cancer.load(split_seed=0), breast_cancer.load(split_seed=0)
  np.testing.assert_array_equal(a.splits["test"][0], b.splits["test"][0])
  assert not np.array_equal(a.splits["test"][0], breast_cancer.load(split_seed=1).splits["test"][0])
