"""The epoch loop: data order, cadence, metric sums and the divergence guard, K steps per dispatch."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import experiment

from nn_jax.training import loop, trainer


def test_epoch_order_is_a_function_of_seed_and_epoch():
  key = lambda seed: loop.seed_keys(seed)["data"]
  a = np.asarray(loop.epoch_order(key(0), 3, 1000))
  assert np.array_equal(a, loop.epoch_order(key(0), 3, 1000))
  assert sorted(a) == list(range(1000))
  assert not np.array_equal(a, loop.epoch_order(key(0), 4, 1000))
  assert not np.array_equal(a, loop.epoch_order(key(1), 3, 1000))


def test_the_seeds_keys_differ_by_purpose_and_by_seed():
  keys = [loop.seed_keys(seed) for seed in (0, 1)]
  flat = [np.asarray(k).tobytes() for seed_keys in keys for k in seed_keys.values()]
  assert len(set(flat)) == 6


@pytest.mark.parametrize("every,expected", [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [5]), (10, [5])])
def test_cadence_is_every_n_and_the_last(every, expected):
  assert [epoch for epoch in range(1, 6) if loop.due(every, epoch, 5)] == expected


def test_batch_plan():
  assert loop.batch_plan(0, 20) == (True, 20, 1)
  assert loop.batch_plan(50, 20) == (True, 20, 1)
  assert loop.batch_plan(32, 455) == (False, 32, 14)  # the last partial batch is dropped


def test_sums_are_float64_means_and_a_nan_is_divergence_naming_the_step():
  sums = loop.EpochSums()
  sums.fold([{"loss": np.float32(1.0)}, {"loss": np.float32(2.0)}], first_step=10, last_good_step=8)
  assert sums.means() == {"loss": 1.5}
  with pytest.raises(loop.Diverged, match="diverged at step 12: loss=nan.*last good checkpoint is step 8"):
    sums.fold([{"loss": np.float32("nan")}], first_step=11, last_good_step=8)
  with pytest.raises(loop.Diverged, match="none: no checkpoint was saved yet"):
    loop.EpochSums().fold([{"loss": np.float32("inf")}], first_step=0, last_good_step=None)


def _params(workdir):
  return jax.tree_util.tree_leaves(trainer.restore_for_inference(workdir)[2])


@pytest.mark.slow
def test_k_steps_per_dispatch_and_device_data_give_the_same_parameters(tmp_path, quiet_progress):
  # 14 steps an epoch: K = 10 splits each epoch 10 + 4, and checkpoints every 5 steps cut dispatches too.
  runs = {}
  for k in (1, 10):
    for where in ("false", "true"):
      workdir = tmp_path / f"{k}_{where}"
      summary = trainer.train_and_evaluate(
          experiment("fnn_binary", "num_epochs=2", f"steps_per_dispatch={k}", f"data_on_device={where}",
                     "checkpoint_every_steps=5", "checkpoint_min_interval_seconds=0"), workdir)
      assert summary["resolved"]["steps_per_dispatch"] == k and summary["resolved"]["data_on_device"] == where
      runs[k, where] = _params(workdir)
      saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
      assert saved[-3:] == [20, 25, 28]  # no dispatch ran past a checkpoint step
  for k in (1, 10):  # where the data lives changes no bit
    for a, b in zip(runs[k, "false"], runs[k, "true"]):
      np.testing.assert_array_equal(a, b)
  # K steps in one program (a lax.scan) or one step per program (no loop): XLA fuses the step's arithmetic
  # differently, so the last bits may differ (measured: at most 3e-8 after 28 steps).
  for a, b in zip(runs[1, "false"], runs[10, "false"]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_cnn_on_mock_mnist_device_and_host_paths_agree(tmp_path, quiet_progress):
  overrides = ("dataset.train_examples=64", "dataset.test_examples=32", "batch_size=16", "eval_batch_size=10",
               "num_epochs=2", "steps_per_dispatch=3")
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    for where in ("false", "true"):
      trainer.train_and_evaluate(experiment("cnn_mnist", *overrides, f"data_on_device={where}"), tmp_path / where)
  for a, b in zip(_params(tmp_path / "false"), _params(tmp_path / "true")):
    np.testing.assert_array_equal(a, b)
  assert (tmp_path / "false" / "metrics.jsonl").read_text() == (tmp_path / "true" / "metrics.jsonl").read_text()
