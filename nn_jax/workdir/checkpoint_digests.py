"""sha256 digests of a checkpoint's items, shard by shard, hashed off the training thread.

Orbax records no checksum of array data, so a flipped bit that still decodes
would be restored silently; these digests catch it. At a save each process
copies to the host the shards it writes (replica 0 of each of its addressable
shards, as orbax does), and orbax's commit thread hashes them and writes
`digests/process_<i>` into the step's folder before the step is finalized: a
checkpoint never exists without its digests, and the training thread pays for
the copy only. At a restore every process checks each recorded shard that one
of its own shards holds whole (all of them when the arrays are restored
replicated, or with the sharding they were saved with), and the processes
agree on the verdict. A shard that no process holds whole cannot be checked,
so the checkpoint is not trusted.
"""

import dataclasses
import hashlib
import json

import jax
import numpy as np
import orbax.checkpoint as ocp

from nn_jax.common import parallel


class ChecksumMismatch(Exception):
  """A restored item's digest differs from the one recorded when it was saved, or cannot be checked."""


def tree_digest(tree) -> str:
  """sha256 of every leaf's bytes in tree order: equal digests, bit-identical trees."""
  digest = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(jax.device_get(tree)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def json_digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _bytes_digest(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)).hexdigest()


def _ranges(index: tuple, shape: tuple) -> list:
  """A shard's place in its array, as a range per dimension."""
  return [range(*s.indices(dim)) for s, dim in zip(index, shape)]


def _index_key(index: tuple, shape: tuple) -> str:
  """A shard's place in its array, as "start:stop" per dimension ("" for a scalar)."""
  return ",".join(f"{r.start}:{r.stop}" for r in _ranges(index, shape))


def _index(key: str) -> tuple:
  return tuple(slice(*map(int, part.split(":"))) for part in key.split(",")) if key else ()


def _local_shards(leaf) -> list:
  """(index, replica id, data) of each shard of `leaf` on this process; a NumPy leaf is one shard, the
  primary process's copy being replica 0."""
  if not isinstance(leaf, jax.Array):
    return [((slice(None),) * np.ndim(leaf), 0 if parallel.is_primary() else 1, leaf)]
  return [(shard.index, shard.replica_id, shard.data) for shard in leaf.addressable_shards]


def host_copies(items: dict) -> list:
  """(item, leaf path, index key, host copy) of every shard this process writes (replica 0, as orbax);
  the copies stay valid after the arrays are donated to the next step."""
  shards = [(name, jax.tree_util.keystr(path), _index_key(index, np.shape(leaf)), data)
            for name, tree in items.items() for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
            for index, replica, data in _local_shards(leaf) if replica == 0]
  for *_, data in shards:
    if isinstance(data, jax.Array):
      data.copy_to_host_async()  # all transfers in flight at once
  return [(name, path, key, np.array(data)) for name, path, key, data in shards]


def hash_shards(shards: list) -> dict:
  """{item: {leaf path: {index key: sha256}}} of `host_copies`'s shards."""
  digests = {}
  for name, path, key, array in shards:
    digests.setdefault(name, {}).setdefault(path, {})[key] = _bytes_digest(array)
  return digests


def _merge(into: dict, digests: dict) -> dict:
  for name, value in digests.items():
    if isinstance(value, dict):
      for path, shards in value.items():
        into.setdefault(name, {}).setdefault(path, {}).update(shards)
    else:
      into[name] = value
  return into


def verify(recorded: dict, trees: dict, json_items: dict) -> None:
  """Raises ChecksumMismatch unless every restored tree and JSON item matches `recorded` (all processes'
  digests), every recorded shard checked by some process."""
  checks = []  # (item, verified here, differs here), one per recorded shard, in the same order on every process
  changed = set()
  for name, tree in trees.items():
    if isinstance(recorded.get(name), str):  # written as one digest of the whole tree
      if tree_digest(tree) != recorded[name]:
        changed.add(name)
      continue
    held = {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
    paths = recorded.get(name, {})
    if not isinstance(paths, dict) or set(paths) != set(held):
      raise ChecksumMismatch(f"{name} holds other arrays than its digests record")
    for path in sorted(paths):
      local = [(index, data) for index, _, data in _local_shards(held[path])]
      for key, digest in sorted(paths[path].items()):
        block = _block(local, _index(key), np.shape(held[path]))
        checks.append((name, block is not None, block is not None and _bytes_digest(block) != digest))
  verified = np.array([c[1] for c in checks], bool)
  differs = np.array([c[2] for c in checks], bool)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    gathered = multihost_utils.process_allgather(np.stack([verified, differs]))
    verified, differs = gathered[:, 0].any(axis=0), gathered[:, 1].any(axis=0)
  changed = sorted(changed | {name for (name, *_), bad in zip(checks, differs) if bad}
                   | {name for name, obj in json_items.items() if recorded.get(name) != json_digest(obj)})
  if changed:
    raise ChecksumMismatch(f"{', '.join(changed)} differ from the checksum recorded at the save")
  unchecked = sorted({name for (name, *_), ok in zip(checks, verified) if not ok})
  if unchecked:
    raise ChecksumMismatch(f"{', '.join(unchecked)} cannot be checked: no process holds a saved shard whole "
                           f"(restore with the sharding it was saved with)")


def _block(local: list, index: tuple, shape: tuple):
  """The host copy of the recorded shard at `index`, cut from a local shard that holds it whole, or None."""
  want = _ranges(index, shape)
  for shard_index, data in local:
    have = _ranges(shard_index, shape)
    if all(h.start <= w.start and w.stop <= h.stop for h, w in zip(have, want)):
      return np.asarray(data)[tuple(slice(w.start - h.start, w.stop - h.start) for h, w in zip(have, want))]
  return None


class DigestsHandler(ocp.AsyncCheckpointHandler):
  """Writes this process's digests in orbax's commit thread; reads back every process's."""

  def save(self, directory, args: "DigestsSave") -> None:
    digests = {**args.json_digests, **hash_shards(args.shards)}
    (directory / f"process_{jax.process_index()}").write_text(json.dumps(digests))

  async def async_save(self, directory, args: "DigestsSave"):
    async def write():
      self.save(directory, args)
    return [ocp.future.CommitFutureAwaitingContractedSignals(write(), name="digests")]

  def restore(self, directory, args=None) -> dict:
    files = sorted(directory.glob("process_*")) or sorted(directory.glob("metadata"))  # metadata: whole trees
    if not files:
      raise ChecksumMismatch("its digests item holds no digests")
    recorded = {}
    for path in files:
      _merge(recorded, json.loads(path.read_text()))
    return recorded


@ocp.args.register_with_handler(DigestsHandler, for_save=True)
@dataclasses.dataclass
class DigestsSave(ocp.args.CheckpointArgs):
  shards: list  # host_copies(...)
  json_digests: dict  # {item: json_digest(obj)}


@ocp.args.register_with_handler(DigestsHandler, for_restore=True)
@dataclasses.dataclass
class DigestsRestore(ocp.args.CheckpointArgs):
  pass
