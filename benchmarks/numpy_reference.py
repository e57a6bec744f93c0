"""The article's from-scratch NumPy training loop for the house-price MLP, as a reference.

The parity test checks the JAX trainer against it, and the benchmark times it.
"""

import numpy as np


def train_article_mlp(params: dict, x: np.ndarray, y: np.ndarray, lr: float, epochs: int) -> dict:
  """Sigmoid hidden layer, linear output, full-batch gradient descent on half the MSE.

  `params` is the Flax tree ({"hidden_0": {"kernel", "bias"}, "output": {...}}); returns the trained tree.
  """
  w1, b1 = params["hidden_0"]["kernel"], params["hidden_0"]["bias"]
  w2, b2 = params["output"]["kernel"], params["output"]["bias"]
  n = len(x)
  for _ in range(epochs):
    hidden = 1.0 / (1.0 + np.exp(-(x @ w1 + b1)))
    error = (hidden @ w2 + b2) - y
    d_out = error / n
    d_hidden = (d_out @ w2.T) * hidden * (1.0 - hidden)
    w2, b2 = w2 - lr * hidden.T @ d_out, b2 - lr * d_out.sum(axis=0)
    w1, b1 = w1 - lr * x.T @ d_hidden, b1 - lr * d_hidden.sum(axis=0)
  return {"hidden_0": {"kernel": w1, "bias": b1}, "output": {"kernel": w2, "bias": b2}}
