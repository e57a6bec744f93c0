"""Orbax checkpoints: every part of the train state round-trips; unreadable ones are set aside."""

import asyncio
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import experiment
from nn_jax import models, parallel, program
from nn_jax.checkpoint import Checkpoints
from nn_jax.errors import UserError


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
