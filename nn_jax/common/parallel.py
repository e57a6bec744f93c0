"""Data parallelism with JAX's own sharding: one `data` mesh axis over every device.

Batches are split along the mesh's `data` axis; params and optimizer state are
replicated. On one CPU this is the identity, so every run takes the same path.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nn_jax.common.errors import UserError


def initialize_distributed(distributed) -> None:
  """Starts JAX's multi-controller runtime when `config.distributed` asks for it.

  `auto=True` lets JAX detect the cluster (SLURM, Cloud TPU, ...); otherwise a
  coordinator address, process count and this process's id are given. Must run
  before any computation. On CPUs, cross-process collectives go through gloo.
  """
  if not (distributed.auto or distributed.coordinator_address):
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if distributed.auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(distributed.coordinator_address, num_processes=distributed.num_processes,
                               process_id=distributed.process_id)


def is_primary() -> bool:
  """Process 0 alone writes logs, plots, summaries and status; every process writes checkpoints."""
  return jax.process_index() == 0


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def split_along_data(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Arrays whose `axis` is the batch: split along it over the mesh."""
  return NamedSharding(mesh, PartitionSpec(*([None] * axis), "data"))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  devices = mesh.devices.size
  if batch_size % devices:
    raise UserError(f"config.batch_size {batch_size} does not divide by the {devices} devices of the mesh; "
                    f"use a multiple of {devices}")


def global_batch(mesh: Mesh, arrays, batch_axis: int = 0):
  """The global batch, split along `data` on `batch_axis`, from the full batch every process holds:
  each process contributes its own contiguous block (process p holds rows p*B/P to (p+1)*B/P)."""
  sharding = split_along_data(mesh, batch_axis)
  count, index = jax.process_count(), jax.process_index()

  def local_block(array):
    rows = array.shape[batch_axis] // count
    block = np.take(array, np.arange(index * rows, (index + 1) * rows), axis=batch_axis) if count > 1 else array
    return jax.make_array_from_process_local_data(sharding, block, array.shape)

  return jax.tree_util.tree_map(local_block, arrays)


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def abstract_like(tree, sharding):
  """Shape/dtype structs of `tree` (arrays or checkpoint metadata) placed with `sharding`."""
  return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)
