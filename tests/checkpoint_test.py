"""Orbax checkpoints: every part of the train state round-trips; unreadable ones are set aside."""

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import ROOT, experiment, subprocess_env

from nn_jax import models
from nn_jax.common import parallel
from nn_jax.common.errors import UserError
from nn_jax.training import program
from nn_jax.workdir.checkpoint import Checkpoints
from nn_jax.workdir.checkpoint_digests import json_digest, tree_digest


def _state(seed=0):
  config = experiment("cnn_mnist:bn_dropout", f"seed={seed}")
  return program.initial_state(config, models.build(config.model), (28, 28, 1))


def _assert_same(a, b):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("asynchronous", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_params_optimizer_model_state_rng_and_position_round_trip(tmp_path, asynchronous, monkeypatch):
  write_json = ocp.JsonCheckpointHandler._save_fn

  async def slow_disk(self, x, directory):  # the write starts after the loop has folded on
    await asyncio.sleep(0.5)
    await write_json(self, x, directory)

  monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", slow_disk)
  saved = _state(0).replace(step=7)
  checkpoints = Checkpoints(tmp_path, asynchronous=asynchronous)
  position = {"epoch": 1, "batch": 3, "sums": {"loss": 1.5}}
  checkpoints.save(saved, position)
  position["sums"]["loss"] = 2.5  # the loop folds on while an asynchronous write is under way
  checkpoints.close()  # waits for an asynchronous write
  sharding = parallel.replicated(parallel.make_mesh())
  restored, progress = Checkpoints(tmp_path).restore_latest_good(_state(1), sharding)
  assert progress == {"epoch": 1, "batch": 3, "sums": {"loss": 1.5}} and int(restored.step) == 7
  for field in ("params", "opt_state", "model_state", "rng"):
    _assert_same(getattr(saved, field), getattr(restored, field))
  variables = Checkpoints(tmp_path, read_only=True).restore_variables(sharding)
  assert set(variables) == {"params", "batch_stats"}
  _assert_same(variables["batch_stats"], saved.model_state["batch_stats"])


def _garble(step_dir):
  for path in (step_dir / "params").rglob("*"):
    if path.is_file() and path.stat().st_size > 64:
      data = bytearray(path.read_bytes())
      for i in range(0, len(data), 7):
        data[i] ^= 0xFF
      path.write_bytes(bytes(data))


@pytest.mark.slow
def test_an_unreadable_latest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, capsys):
  checkpoints = Checkpoints(tmp_path / "checkpoints")
  for step in (1, 2):
    checkpoints.save(_state(0).replace(step=step), {"epoch": step})
  checkpoints.close()
  _garble(tmp_path / "checkpoints" / "2")
  sharding = parallel.replicated(parallel.make_mesh())
  restored, progress = Checkpoints(tmp_path / "checkpoints").restore_latest_good(_state(1), sharding)
  assert int(restored.step) == 1 and progress == {"epoch": 1}
  assert "Warning: checkpoint 2 is unreadable" in capsys.readouterr().err
  assert (tmp_path / "corrupt_checkpoints" / "2").is_dir()


@pytest.mark.slow
def test_none_readable_is_an_error_not_a_fresh_start(tmp_path):
  checkpoints = Checkpoints(tmp_path / "checkpoints")
  checkpoints.save(_state(0).replace(step=1), {"epoch": 1})
  checkpoints.close()
  _garble(tmp_path / "checkpoints" / "1")
  with pytest.raises(UserError, match="none of the checkpoints"):
    Checkpoints(tmp_path / "checkpoints").restore_latest_good(_state(1), parallel.replicated(parallel.make_mesh()))


@pytest.mark.slow
def test_keeps_the_latest_n_and_the_best(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=1, best_metric="test/accuracy")
  for step, accuracy in ((1, 0.5), (2, 0.9), (3, 0.7), (4, 0.6)):
    checkpoints.save(_state(0).replace(step=step), {"epoch": step}, {"test/accuracy": accuracy})
  checkpoints.close()
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 4]


def _flip_bytes_in_the_stored_arrays(step_dir, item="params", count=1):
  """The reproduction: `count` bytes from 70% of the largest file of the item's array data, flipped."""
  files = [p for p in (step_dir / item / "ocdbt.process_0" / "d").iterdir() if p.is_file()]
  largest = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  start = int(len(data) * 0.7)
  for i in range(start, start + count):
    data[i] ^= 0x01
  largest.write_bytes(bytes(data))


def _trained(step):
  """A state whose every item holds distinct values (Adam's moments are zeros before any step)."""
  state = _state(0)
  noise = lambda tree: jax.tree_util.tree_map(
      lambda a: a + np.linspace(0.1, 1.0, a.size, dtype=np.float32).reshape(a.shape) if a.dtype == np.float32 else a,
      tree)
  return state.replace(step=step, params=noise(state.params), opt_state=noise(state.opt_state))


@pytest.mark.parametrize("item,count", [("params", 1), ("opt_state", 64)])
def test_flipped_bytes_in_the_array_data_fail_the_checksum_and_the_previous_checkpoint_is_used(tmp_path, capsys,
                                                                                                item, count):
  checkpoints = Checkpoints(tmp_path / "checkpoints")
  for step in (1, 2):
    checkpoints.save(_trained(step), {"epoch": step})
  checkpoints.close()
  _flip_bytes_in_the_stored_arrays(tmp_path / "checkpoints" / "2", item, count)
  sharding = parallel.replicated(parallel.make_mesh())
  restored, progress = Checkpoints(tmp_path / "checkpoints").restore_latest_good(_state(1), sharding)
  assert int(restored.step) == 1 and progress == {"epoch": 1}
  assert "Warning: checkpoint 2 is unreadable" in capsys.readouterr().err


def _remove_digests(step_dir):
  shutil.rmtree(step_dir / "digests")


def _flip_in_metrics(position):
  def flip(step_dir):
    path = step_dir / "metrics" / "metrics"
    data = bytearray(path.read_bytes())
    data[position(data)] ^= 0x01
    path.write_bytes(bytes(data))
  return flip


@pytest.mark.parametrize("damage,reason", [
    (_remove_digests, "digests item is missing"),  # nothing to verify it by: not trusted
    (_flip_in_metrics(lambda data: 0), "metrics item does not parse"),  # "{" becomes "z"
    (_flip_in_metrics(lambda data: data.index(b"0.9") + 2), "metrics differ"),  # 0.9 becomes 0.8, still JSON
])
def test_a_checkpoint_that_cannot_be_verified_is_set_aside_and_the_previous_one_used(tmp_path, capsys, damage,
                                                                                     reason):
  checkpoints = Checkpoints(tmp_path / "checkpoints", best_metric="test/accuracy")
  for step in (1, 2):
    checkpoints.save(_trained(step), {"epoch": step}, {"test/accuracy": 0.5 + 0.4 * (step - 1)})
  checkpoints.close()
  damage(tmp_path / "checkpoints" / "2")
  sharding = parallel.replicated(parallel.make_mesh())
  restored, progress = Checkpoints(tmp_path / "checkpoints", best_metric="test/accuracy").restore_latest_good(
      _state(1), sharding)
  assert int(restored.step) == 1 and progress == {"epoch": 1}
  err = capsys.readouterr().err
  assert "Warning: checkpoint 2 is unreadable" in err and reason in err


def test_predict_refuses_a_checkpoint_that_fails_its_checksum(tmp_path):
  checkpoints = Checkpoints(tmp_path)
  checkpoints.save(_trained(1), {"epoch": 1})
  checkpoints.close()
  _flip_bytes_in_the_stored_arrays(tmp_path / "1")
  with pytest.raises(UserError, match="checkpoint 1 under .* fails its checksum"):
    Checkpoints(tmp_path, read_only=True).restore_variables(parallel.replicated(parallel.make_mesh()))


def test_array_digests_are_hashed_off_the_training_thread_from_copies_taken_at_the_save(tmp_path, monkeypatch):
  sha256, release, hashed_on = hashlib.sha256, threading.Event(), []

  class HeldUp:  # hashes of array data wait until released, except on the training thread (to fail, not hang)
    def __init__(self, data=b""):
      self.digest = sha256()
      self.update(data)

    def update(self, data):
      if memoryview(data).nbytes > 1024:
        hashed_on.append(threading.current_thread())
        if threading.current_thread() is not threading.main_thread():
          release.wait(60)
      self.digest.update(data)

    def hexdigest(self):
      return self.digest.hexdigest()

  saved = _trained(2)
  expected = jax.tree_util.tree_map(np.array, saved)
  checkpoints = Checkpoints(tmp_path, asynchronous=True)
  monkeypatch.setattr(hashlib, "sha256", HeldUp)  # after the compilations, whose cache keys are sha256s
  checkpoints.save(saved, {"epoch": 2})  # returns while the hashes wait
  assert threading.main_thread() not in hashed_on
  jax.tree_util.tree_map(lambda a: isinstance(a, jax.Array) and a.delete(), saved)  # what the next step's donation does to the arrays
  release.set()
  checkpoints.close()
  monkeypatch.undo()
  assert hashed_on
  restored, _ = Checkpoints(tmp_path).restore_latest_good(_state(1), parallel.replicated(parallel.make_mesh()))
  _assert_same(expected.params, restored.params)
  _assert_same(expected.opt_state, restored.opt_state)


@pytest.mark.parametrize("flip", [False, True])
def test_digests_of_whole_trees_are_still_checked(tmp_path, capsys, flip):
  """Checkpoints written with one digest per item (not per shard) resume, and are checked."""
  checkpoints = Checkpoints(tmp_path / "checkpoints")
  for step in (1, 2):
    checkpoints.save(_trained(step), {"epoch": step})
  checkpoints.close()
  for step in (1, 2):
    digests = tmp_path / "checkpoints" / str(step) / "digests"
    (digests / "process_0").unlink()
    state = _trained(step)
    (digests / "metadata").write_text(json.dumps({
        "params": tree_digest(state.params), "opt_state": tree_digest(state.opt_state),
        "model_state": tree_digest({"rng": state.rng, **state.model_state}), "progress": json_digest({"epoch": step})}))
  if flip:
    _flip_bytes_in_the_stored_arrays(tmp_path / "checkpoints" / "2")
  restored, progress = Checkpoints(tmp_path / "checkpoints").restore_latest_good(
      _state(1), parallel.replicated(parallel.make_mesh()))
  assert int(restored.step) == (1 if flip else 2)
  assert ("Warning: checkpoint 2 is unreadable" in capsys.readouterr().err) == flip


SHARDED = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from nn_jax.workdir import checkpoint_digests as d
mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
place = lambda tree, spec: {k: jax.device_put(v, NamedSharding(mesh, P(*spec[:v.ndim]))) for k, v in tree.items()}
values = {"w": np.arange(48, dtype=np.float32).reshape(8, 6), "b": np.arange(8, dtype=np.float32)}
saved = place(values, P("a", "b"))
recorded = d.hash_shards(d.host_copies({"params": saved}))
print("shards", {path: sorted(shards) for path, shards in recorded["params"].items()})
for name, spec in (("same", P("a", "b")), ("replicated", P()), ("rows", P("a")), ("quarters", P(("a", "b")))):
  try:
    d.verify(recorded, {"params": place(values, spec)}, {})
    print(name, "ok")
  except d.ChecksumMismatch as e:
    print(name, e)
changed = dict(values, w=values["w"].copy())
changed["w"][7, 5] += 1
try:
  d.verify(recorded, {"params": place(changed, P("a", "b"))}, {})
except d.ChecksumMismatch as e:
  print("changed", e)
"""


@pytest.mark.slow  # a subprocess with four CPU devices
def test_digests_are_per_shard_and_checked_by_the_shards_a_restore_holds():
  result = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  assert result.returncode == 0, result.stderr[-2000:]
  lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
  # w's four blocks, each recorded once; b (split along "a", replicated along "b") in its two halves
  assert lines["shards"] == str({"['b']": ["0:4", "4:8"], "['w']": ["0:4,0:3", "0:4,3:6", "4:8,0:3", "4:8,3:6"]})
  assert lines["same"] == lines["replicated"] == lines["rows"] == "ok"  # every saved block inside a held shard
  assert lines["quarters"].startswith("params cannot be checked")  # rows 0:2, 2:4, ...: no block whole
  assert lines["changed"].startswith("params differ")
