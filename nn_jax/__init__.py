"""nn_jax: the classic neural networks as pure Flax modules, one jitted Optax trainer.

For notebooks: `nn_jax.train(config, workdir, **overrides)` (nn_jax/api.py) and
`nn_jax.load_exported(path)` (nn_jax/export.py). They import JAX only when called,
so `python -m nn_jax` can catch a signal before its heavy imports.
"""

__version__ = "0.1.0"


def train(config: str, workdir, **overrides):
  """Trains an experiment config into `workdir`; returns an nn_jax.api.Result (summary, history, predict)."""
  from nn_jax import api
  return api.train(config, workdir, **overrides)


def load_exported(path):
  """A model written by `python -m nn_jax export`, callable on a batch of model inputs."""
  from nn_jax import export
  return export.load_exported(path)
