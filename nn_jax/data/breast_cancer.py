"""Wisconsin breast cancer (diagnostic), as scikit-learn bundles it: the ten "mean" features -> benign?

569 tumours; the label is 1 for benign, 0 for malignant (scikit-learn's coding).
The split is stratified and fixed by `split_seed` (not the training seed, so
seeds vary only the initialization and data order); standardization is fitted
on the training split alone.
"""

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn import model_selection

from nn_jax.data.dataset import Dataset


def load(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
  bundle = sk_datasets.load_breast_cancer()
  features = bundle.data[:, :10]  # the ten "mean ..." columns
  labels = bundle.target.astype(np.float32)[:, None]
  x_train, x_test, y_train, y_test = model_selection.train_test_split(
      features, labels, test_size=test_fraction, stratify=labels, random_state=split_seed)
  mean, std = x_train.mean(axis=0), x_train.std(axis=0)

  def encode_inputs(x):
    return ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)

  return Dataset(
      name="breast_cancer", splits={"train": (encode_inputs(x_train), y_train), "test": (encode_inputs(x_test), y_test)},
      input_names=tuple(name.replace(" ", "_") for name in bundle.feature_names[:10]),
      target_name="benign logit", encode_inputs=encode_inputs)
