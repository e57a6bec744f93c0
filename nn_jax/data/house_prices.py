"""The article's house prices: [size m², age years] -> price in thousand euros.

Inputs and targets are standardized with the population mean and std (numpy's
default ddof=0), as the article does; predictions are de-normalized back to t€.
"""

import importlib.resources

import numpy as np

from nn_jax.data.dataset import Dataset


def read_table() -> np.ndarray:
  """The raw 20x3 table: size_m2, age_years, price_keur."""
  with importlib.resources.files("nn_jax.data").joinpath("house_prices.csv").open() as f:
    return np.loadtxt(f, delimiter=",", comments="#", skiprows=5, dtype=np.float64)


def load() -> Dataset:
  table = read_table()
  raw_x, raw_y = table[:, :2], table[:, 2:]
  x_mean, x_std = raw_x.mean(axis=0), raw_x.std(axis=0)
  y_mean, y_std = raw_y.mean(axis=0), raw_y.std(axis=0)

  def encode_inputs(x):
    return ((np.asarray(x, np.float64) - x_mean) / x_std).astype(np.float32)

  def decode_outputs(y):
    return np.asarray(y, np.float64) * y_std + y_mean

  train = (encode_inputs(raw_x), ((raw_y - y_mean) / y_std).astype(np.float32))
  return Dataset(
      name="house_prices", splits={"train": train},
      input_names=("size_m2", "age_years"), target_name="price", target_unit="t€",
      encode_inputs=encode_inputs, decode_outputs=decode_outputs, target_scale=float(y_std[0]),
      prediction_template="Predicted price for {size_m2:g} m², {age_years:g} years: {value:.1f} t€")
