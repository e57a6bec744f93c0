"""Data parallelism with JAX's own sharding: one `data` mesh axis over every device.

Batches are split along the mesh's `data` axis; params and optimizer state are
replicated. On one CPU this is the identity, so every run takes the same path.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nn_jax.errors import UserError


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def split_along_data(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec("data"))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  devices = mesh.devices.size
  if batch_size % devices:
    raise UserError(f"config.batch_size {batch_size} does not divide by the {devices} devices of the mesh; "
                    f"use a multiple of {devices}")


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def abstract_like(tree, sharding):
  """Shape/dtype structs of `tree` (arrays or checkpoint metadata) placed with `sharding`."""
  return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)
