"""Activation functions by the names configs use."""

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {"sigmoid": nn.sigmoid, "relu": nn.relu, "tanh": jnp.tanh}
