"""Exact, fault-tolerant training: kills, signals, divergence, device-count changes, corrupt input.

Each run is the real CLI on the feed-forward classifier (3 epochs of 14 steps, a checkpoint every 5
steps and at each epoch end), compared bit for bit with an uninterrupted run. A run that is killed,
signalled or given other devices is a subprocess; the others (resuming, refusing) run in this
process (conftest.run_cli).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_cli

from nn_jax.training import trainer

pytestmark = pytest.mark.slow  # subprocesses of the real CLI: the full tier (make test)

FNN = str(ROOT / "experiments" / "fnn_binary.py")
RUN = ["--config.num_epochs=3", "--config.checkpoint_every_steps=5", "--config.checkpoint_every_epochs=1",
       "--config.log_every_epochs=1", "--config.checkpoint_min_interval_seconds=0",
       "--config.keep_checkpoints=20", "--config.progress=False"]
INJECT = [sys.executable, str(ROOT / "tests" / "fault_injection.py")]


def cli(workdir, *extra, env=None, prefix=None):
  arguments = ["train", "--config", FNN, "--workdir", str(workdir), *RUN, *extra]
  if env is None and prefix is None:
    return run_cli(arguments)
  return subprocess.run((prefix or [sys.executable, "-m", "nn_jax"]) + arguments, capture_output=True, text=True,
                        cwd=ROOT, timeout=300, env={**os.environ, **(env or {})})



def faulty(mode, nth, workdir, *extra):
  return cli(workdir, *extra, prefix=INJECT + [mode, str(nth), "--"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = cli(workdir)
  assert result.returncode == 0, result.stderr
  return workdir


def params_of(workdir):
  return trainer.restore_for_inference(workdir)[2]


def assert_identical_runs(a, b):
  for x, y in zip(*(sorted(_leaves(params_of(w))) for w in (a, b))):
    assert x[0] == y[0]
    np.testing.assert_array_equal(x[1], y[1])
  assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


def _leaves(params, prefix=""):
  for key, value in params.items():
    if isinstance(value, dict):
      yield from _leaves(value, f"{prefix}{key}/")
    else:
      yield prefix + key, np.asarray(value)


def status_of(workdir):
  return json.loads((workdir / "status.json").read_text())


@pytest.mark.parametrize("nth_save", [1, 3])  # mid-epoch 1 (step 5), and epoch 1's end (step 14)
def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(tmp_path, uninterrupted, nth_save):
  killed = faulty("kill_after_save", nth_save, tmp_path)
  assert killed.returncode == -signal.SIGKILL and "FAULT" in killed.stdout
  assert status_of(tmp_path)["status"] == "running"  # it never got to say otherwise
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Resuming from checkpoint" in resumed.stdout
  assert_identical_runs(uninterrupted, tmp_path)
  status = status_of(tmp_path)
  assert status["status"] == "done" and status["kills"] == 1 and status["steps_done"] == 42


def test_sigkill_inside_a_checkpoint_write_leaves_the_previous_one_latest(tmp_path, uninterrupted):
  killed = faulty("kill_inside_save", 3, tmp_path)
  assert killed.returncode == -signal.SIGKILL and "FAULT: killed inside checkpoint write" in killed.stdout
  checkpoints = tmp_path / "checkpoints"
  assert any("tmp" in p.name for p in checkpoints.iterdir())  # the interrupted write is on disk ...
  finished = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
  assert finished == [5, 10]  # ... but only complete ones count
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Resuming from checkpoint at step 10" in resumed.stdout
  assert not any("tmp" in p.name for p in checkpoints.iterdir())  # cleaned up on resume
  assert_identical_runs(uninterrupted, tmp_path)


def test_sigkill_at_an_arbitrary_moment_then_resume_is_bit_identical(tmp_path, uninterrupted):
  process = subprocess.Popen([sys.executable, "-m", "nn_jax", "train", "--config", FNN, "--workdir", str(tmp_path),
                              *RUN], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("Epoch 1/"):
      time.sleep(0.05)
      process.kill()
      break
  process.wait(timeout=60)
  process.stdout.close()
  assert process.returncode == -signal.SIGKILL
  killed = status_of(tmp_path)
  assert killed["status"] == "running" and killed["steps_done"] < 42  # the kill cut the run short
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Resuming from checkpoint" in resumed.stdout
  assert_identical_runs(uninterrupted, tmp_path)


def test_sigterm_saves_exits_0_and_resumes_exactly(tmp_path, uninterrupted):
  process = subprocess.Popen([sys.executable, "-m", "nn_jax", "train", "--config", FNN, "--workdir", str(tmp_path),
                              *RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("Epoch 1/"):
      process.send_signal(signal.SIGTERM)
      break
  out = line + process.stdout.read()
  assert process.wait(timeout=60) == 0, process.stderr.read()
  process.stdout.close()
  process.stderr.close()
  assert "Stopped by SIGTERM" in out and "Resume by running the same command again" in out
  status = status_of(tmp_path)
  assert status["status"] == "preempted" and status["preemptions"] == 1
  assert status["last_checkpoint_step"] == status["steps_done"] < 42
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert_identical_runs(uninterrupted, tmp_path)
  assert status_of(tmp_path)["status"] == "done"


def test_divergence_stops_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  result = cli(tmp_path, "--config.optimizer.learning_rate=1e9", "--config.checkpoint_every_steps=1")
  assert result.returncode == 1
  error = result.stderr.strip().splitlines()[-1]
  assert "training diverged at step" in error and "learning_rate" in error
  status = status_of(tmp_path)
  assert status["status"] == "diverged" and "diverged at step" in status["message"]
  diverged_step = int(error.split("diverged at step ")[1].split(":")[0])
  saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved and all(step < diverged_step for step in saved)  # a checkpoint every step, none past the guard
  assert f"last good checkpoint is step {saved[-1]}" in error
  assert all(np.all(np.isfinite(v)) for _, v in _leaves(params_of(tmp_path)))


def test_a_changed_config_is_refused_unless_allowed(tmp_path, uninterrupted):
  assert cli(tmp_path, "--config.num_epochs=1").returncode == 0
  refused = cli(tmp_path, "--config.optimizer.learning_rate=0.5")
  assert refused.returncode == 2
  assert "optimizer.learning_rate: 0.001 -> 0.5" in refused.stderr and "allow_config_change" in refused.stderr
  assert cli(tmp_path).returncode == 0  # run length may change: 1 -> 3 epochs
  assert cli(tmp_path, "--config.num_epochs=4", "--config.optimizer.learning_rate=0.5",
             "--config.allow_config_change=True").returncode == 0


def test_checkpoint_from_4_devices_restores_on_1_and_back(tmp_path, uninterrupted):
  four = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  first = cli(tmp_path, "--config.num_epochs=1", env=four)
  assert first.returncode == 0, first.stderr
  assert json.loads((tmp_path / "summary.json").read_text())["device_count"] == 4
  on_one = cli(tmp_path, "--config.num_epochs=2")  # resumes the 4-device checkpoint on 1 device
  assert on_one.returncode == 0, on_one.stderr
  assert json.loads((tmp_path / "summary.json").read_text())["device_count"] == 1
  on_four = cli(tmp_path, env=four)  # and a 1-device checkpoint on 4
  assert on_four.returncode == 0, on_four.stderr
  # Same global batch, same data order: the result equals the 1-device run to float tolerance.
  for (name, x), (_, y) in zip(sorted(_leaves(params_of(uninterrupted))), sorted(_leaves(params_of(tmp_path)))):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=name)


def test_batch_size_that_does_not_divide_by_the_devices_is_refused(tmp_path):
  result = cli(tmp_path, "--config.batch_size=30", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert result.returncode == 2
  assert "does not divide by the 4 devices" in result.stderr
  assert not tmp_path.joinpath("config.json").exists()


def _flip_bytes_in_params(checkpoint_dir):
  files = [p for p in (checkpoint_dir / "params").rglob("*") if p.is_file() and p.stat().st_size > 64]
  assert files
  for path in files:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 7):
      data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_garbled_latest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, uninterrupted):
  assert faulty("kill_after_save", 3, tmp_path).returncode == -signal.SIGKILL  # saves at steps 5, 10, 14
  _flip_bytes_in_params(tmp_path / "checkpoints" / "14")
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Warning: checkpoint 14 is unreadable" in resumed.stderr
  assert "Resuming from checkpoint at step 10" in resumed.stdout
  assert (tmp_path / "corrupt_checkpoints" / "14").is_dir()  # kept for inspection, not deleted
  assert_identical_runs(uninterrupted, tmp_path)


def test_truncated_checkpoint_falls_back_too(tmp_path):
  assert faulty("kill_after_save", 2, tmp_path).returncode == -signal.SIGKILL
  for path in (tmp_path / "checkpoints" / "10" / "params").rglob("*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Warning: checkpoint 10 is unreadable" in resumed.stderr and "at step 5" in resumed.stdout


def test_unreadable_config_json_is_a_clear_error_not_a_fresh_start(tmp_path):
  assert cli(tmp_path, "--config.num_epochs=1").returncode == 0
  (tmp_path / "config.json").write_text("{garbled")
  result = cli(tmp_path)
  assert result.returncode == 2
  assert result.stderr.count("\n") == 1 and "config.json is not valid JSON" in result.stderr


def test_keeps_the_latest_and_the_best(tmp_path):
  result = cli(tmp_path, "--config.keep_checkpoints=1", "--config.checkpoint_every_steps=0",
               "--config.checkpoint_every_epochs=1")
  assert result.returncode == 0, result.stderr
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  auc = {r["epoch"]: r["auc"] for r in rows if r["split"] == "test"}
  best_epoch = max(auc, key=auc.get)
  kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert kept == sorted({42, best_epoch * 14})


def test_all_checkpoints_unreadable_is_an_error_not_a_fresh_start(tmp_path):
  assert faulty("kill_after_save", 2, tmp_path).returncode == -signal.SIGKILL  # saves at steps 5 and 10
  for step in ("5", "10"):
    _flip_bytes_in_params(tmp_path / "checkpoints" / step)
  metrics_before = (tmp_path / "metrics.jsonl").read_text()
  result = cli(tmp_path)
  assert result.returncode == 1
  assert "none of the checkpoints" in result.stderr.strip().splitlines()[-1]
  assert (tmp_path / "metrics.jsonl").read_text() == metrics_before  # nothing overwritten


def test_epoch_checkpoints_do_not_wait_for_the_log_interval(tmp_path):
  result = cli(tmp_path, "--config.log_every_epochs=3", "--config.checkpoint_every_steps=0")
  assert result.returncode == 0, result.stderr
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [14, 28, 42]


# --- Nothing lost, nothing silent --------------------------------------------------------------------------


def _one_line(result):
  return result.stderr.strip().count("\n") == 0 and result.stderr.startswith("nn_jax: error: ")


def test_a_flipped_byte_in_a_checkpoint_is_caught_by_its_checksum(tmp_path, uninterrupted):
  assert faulty("kill_after_save", 3, tmp_path).returncode == -signal.SIGKILL  # saves at steps 5, 10, 14
  params = tmp_path / "checkpoints" / "14" / "params" / "ocdbt.process_0" / "d"
  largest = max(params.iterdir(), key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  data[int(len(data) * 0.7)] ^= 0x01
  largest.write_bytes(bytes(data))
  predicted = run_cli(["predict", "--workdir", str(tmp_path), "--input", ",".join(["0"] * 10)])
  assert predicted.returncode == 1 and "fails its checksum" in predicted.stderr and _one_line(predicted)
  resumed = cli(tmp_path)
  assert resumed.returncode == 0, resumed.stderr
  assert "Warning: checkpoint 14 is unreadable" in resumed.stderr and "at step 10" in resumed.stdout
  assert_identical_runs(uninterrupted, tmp_path)


def test_a_config_change_the_checkpoint_cannot_hold_is_refused_and_destroys_nothing(tmp_path, uninterrupted):
  assert cli(tmp_path, "--config.num_epochs=1").returncode == 0
  config_before = (tmp_path / "config.json").read_text()
  steps_before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
  changed = cli(tmp_path, "--config.optimizer.name=sgd", "--config.allow_config_change=True")
  assert changed.returncode == 2 and _one_line(changed)
  assert "cannot be resumed with this config" in changed.stderr and "another optimizer" in changed.stderr
  assert (tmp_path / "config.json").read_text() == config_before
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == steps_before
  assert not (tmp_path / "corrupt_checkpoints").exists()
  assert cli(tmp_path).returncode == 0  # the original command still resumes
  assert_identical_runs(uninterrupted, tmp_path)


def test_none_readable_is_refused_every_time(tmp_path):
  assert faulty("kill_after_save", 2, tmp_path).returncode == -signal.SIGKILL
  for step in ("5", "10"):
    _flip_bytes_in_params(tmp_path / "checkpoints" / step)
  for attempt in range(2):
    result = cli(tmp_path)
    *warnings, error = result.stderr.strip().splitlines()
    assert result.returncode == 1 and error.startswith("nn_jax: error: ")
    # The first attempt names each checkpoint it set aside (stderr, before the error); the second has none left.
    assert [w.split(" is unreadable")[0] for w in warnings] == (
        ["Warning: checkpoint 10", "Warning: checkpoint 5"] if attempt == 0 else [])


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
  first = subprocess.Popen([sys.executable, "-m", "nn_jax", "train", "--config", FNN, "--workdir", str(tmp_path),
                            *RUN, "--config.num_epochs=50"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  for line in first.stdout:
    if line.startswith("Epoch 1/"):
      break
  second = cli(tmp_path)
  first.terminate()
  first.wait(timeout=60)
  first.stdout.close()
  assert second.returncode == 2 and _one_line(second) and f"is in use by pid {first.pid}" in second.stderr


def test_a_deleted_config_json_does_not_let_any_config_resume(tmp_path):
  assert cli(tmp_path, "--config.num_epochs=1").returncode == 0
  (tmp_path / "config.json").unlink()
  result = cli(tmp_path, "--config.optimizer.learning_rate=0.5")
  assert result.returncode == 2 and "holds checkpoints but no config.json" in result.stderr


def test_fewer_epochs_than_a_run_has_trained_is_refused(tmp_path, uninterrupted):
  assert cli(tmp_path).returncode == 0
  result = cli(tmp_path, "--config.num_epochs=1")
  assert result.returncode == 2 and "has trained 3 epochs already" in result.stderr
  assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 3


def test_sigterm_during_start_up_stops_cleanly(tmp_path, uninterrupted):
  process = subprocess.Popen([sys.executable, "-m", "nn_jax", "train", "--config", FNN, "--workdir", str(tmp_path),
                              *RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  time.sleep(1.0)  # importing, well before the first step
  process.send_signal(signal.SIGTERM)
  out, err = process.communicate(timeout=120)
  assert process.returncode == 0, err
  assert "Stopped by SIGTERM" in out and status_of(tmp_path)["status"] == "preempted"
  assert cli(tmp_path).returncode == 0
  assert_identical_runs(uninterrupted, tmp_path)
