"""nn_jax: the classic neural networks as pure Flax modules, one jitted Optax trainer."""

__version__ = "0.1.0"
