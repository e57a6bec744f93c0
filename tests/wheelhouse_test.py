"""make wheelhouse: the packages an accelerator node lacks, pinned to the versions tested here."""

import importlib.metadata

from tools import wheelhouse


def test_every_package_is_pinned_to_a_version_installed_here():
  for name in wheelhouse.PACKAGES:
    assert importlib.metadata.version(name)  # raises PackageNotFoundError otherwise


def test_jax_and_what_the_node_already_has_are_never_fetched():
  assert not {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"} & set(wheelhouse.PACKAGES)
