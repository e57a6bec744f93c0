"""The article's MNIST CNN."""

import flax.linen as nn


class CNN(nn.Module):
  """Conv 32 3x3 relu, max-pool 2, Conv 64 3x3 relu, max-pool 2, flatten, Dense 128 relu, Dense 10.

  Convolutions use valid padding (Keras' default, as in the article), so the
  feature maps go 28 -> 26 -> 13 -> 11 -> 5 and the flattened size is 1600.
  Returns logits; the softmax is folded into the cross-entropy.
  """
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID", name="conv_0")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv_1")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(128, name="dense_0")(x))
    return nn.Dense(self.num_classes, name="logits")(x)
