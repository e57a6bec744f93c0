"""The device mesh: batches split along `data`, everything else replicated."""

import types

import jax
import numpy as np
import pytest

from nn_jax.common import parallel
from nn_jax.common.errors import UserError


def test_global_batch_is_split_along_the_named_axis():
  mesh = parallel.make_mesh()
  batch = parallel.global_batch(mesh, np.arange(24.0).reshape(2, 6, 2), batch_axis=1)
  assert batch.sharding.spec == jax.sharding.PartitionSpec(None, "data")
  np.testing.assert_array_equal(batch, np.arange(24.0).reshape(2, 6, 2))


def test_batch_size_must_divide_by_the_devices():
  mesh = parallel.make_mesh()
  parallel.check_batch_size(mesh.devices.size * 3, mesh)
  four = types.SimpleNamespace(devices=np.empty((2, 2)))  # what the check reads of a 4-device mesh, on any machine
  parallel.check_batch_size(12, four)
  with pytest.raises(UserError, match="config.batch_size 6 does not divide by the 4 devices of the mesh; use a multiple"):
    parallel.check_batch_size(6, four)


def test_round_up_and_abstract_like():
  assert parallel.round_up(7, 4) == 8 and parallel.round_up(8, 4) == 8
  sharding = parallel.replicated(parallel.make_mesh())
  abstract = parallel.abstract_like({"w": np.zeros((2, 3), np.float32)}, sharding)
  assert abstract["w"].shape == (2, 3) and abstract["w"].sharding == sharding
