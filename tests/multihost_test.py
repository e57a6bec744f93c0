"""Multi-host: two processes on 127.0.0.1 (jax.distributed, CPU collectives) train as one."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT

from nn_jax.training import trainer, watchdog

pytestmark = pytest.mark.slow  # subprocesses of the real CLI: the full tier (make test)

CNN = str(ROOT / "experiments" / "cnn_mnist.py")
MOCK_CLI = [sys.executable, str(ROOT / "tests" / "mock_mnist_cli.py")]
SMALL = ["--config.num_epochs=2", "--config.batch_size=16", "--config.dataset.train_examples=64",
         "--config.dataset.test_examples=40", "--config.eval_batch_size=16", "--config.progress=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(command):
  """`command`, a train command line, as processes 0 and 1 of one run on 127.0.0.1."""
  address = f"127.0.0.1:{_free_port()}"
  return [subprocess.Popen([*command, f"--config.distributed.coordinator_address={address}",
                            "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for i in range(2)]


def _train_mock_cnn(workdir, *args, devices=1):
  result = subprocess.run(MOCK_CLI + ["train", "--config", CNN, "--workdir", str(workdir), *SMALL, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})
  assert result.returncode == 0, result.stderr[-3000:]


def _metric_rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one(tmp_path):
  # Batches of 16 in 2 microbatches of 8, each split in blocks of 4 across the two devices.
  split = ["--config.microbatch_size=8"]
  processes = _two_processes(MOCK_CLI + ["train", "--config", CNN, "--workdir", str(tmp_path / "two"), *SMALL, *split])
  outputs = [p.communicate(timeout=300) for p in processes]
  for process, (out, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-3000:]
  assert "Test accuracy" in outputs[0][0] and "Epoch" not in outputs[1][0]  # one log, process 0's
  summary = json.loads((tmp_path / "two" / "summary.json").read_text())
  assert summary["device_count"] == 2 and summary["steps"] == 8 and summary["microbatches"] == 2

  # One process over two devices runs the same programs and the same two-way reductions: bit for bit.
  _train_mock_cnn(tmp_path / "one_process", *split, devices=2)
  _train_mock_cnn(tmp_path / "one_device")
  names = ("two", "one_process", "one_device")
  rows = {name: _metric_rows(tmp_path / name) for name in names}
  params = {name: jax.tree_util.tree_leaves(trainer.restore_for_inference(tmp_path / name)[2]) for name in names}
  assert len(rows["two"]) == len(rows["one_device"]) == 4 and rows["one_process"] == rows["two"]
  for a, b in zip(params["one_process"], params["two"]):
    np.testing.assert_array_equal(a, b)

  # One device sums each batch in another order, so only rounding separates it from the two. Adam turns
  # rounding into whole steps where a gradient is near zero (its update is lr * m / sqrt(v), about lr * sign(g)),
  # so no coordinate can be held closer than 2 * lr per step; and the mock CNN over seeds 0-7 (on a 2-core AMD
  # EPYC) moved at most 191 of its 225,034 values (0.085%) past rtol 1e-4, atol 1e-5, the largest by 8.4e-4,
  # where a learning rate 1% off moves 56% of them.
  for a, b in zip(rows["one_device"], rows["two"]):
    assert (a["epoch"], a["split"]) == (b["epoch"], b["split"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
  learning_rate = json.loads((tmp_path / "two" / "config.json").read_text())["optimizer"]["learning_rate"]
  for a, b in zip(params["one_device"], params["two"]):
    np.testing.assert_allclose(a, b, rtol=0, atol=2 * learning_rate * summary["steps"])
  past = sum(int((~np.isclose(b, a, rtol=1e-4, atol=1e-5)).sum()) for a, b in zip(params["one_device"], params["two"]))
  assert past <= 0.01 * sum(a.size for a in params["two"]), f"{past} values past rtol 1e-4, atol 1e-5"


def test_four_devices_train_like_one(tmp_path):
  fnn = str(ROOT / "experiments" / "fnn_binary.py")
  args = ["--config.num_epochs=2", "--config.progress=False"]
  runs = {}
  for devices in (1, 4):
    workdir = tmp_path / str(devices)
    result = subprocess.run([sys.executable, "-m", "nn_jax", "train", "--config", fnn, "--workdir", str(workdir), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ,
                                 "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})
    assert result.returncode == 0, result.stderr
    assert json.loads((workdir / "summary.json").read_text())["device_count"] == devices
    runs[devices] = trainer.restore_for_inference(workdir)[2]
  for a, b in zip(jax.tree_util.tree_leaves(runs[1]), jax.tree_util.tree_leaves(runs[4])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


FNN = str(ROOT / "experiments" / "fnn_binary.py")


def _fnn(workdir, *args):
  return [sys.executable, "-m", "nn_jax", "train", "--config", FNN, "--workdir", str(workdir),
          "--config.progress=False", *args]


def _final_params(workdir):
  return jax.tree_util.tree_leaves(trainer.restore_for_inference(workdir)[2]["params"])


def test_sigterm_to_one_process_stops_both_at_the_same_step_and_resumes_exactly(tmp_path):
  args = ["--config.num_epochs=12", "--config.steps_per_dispatch=1", "--config.log_every_epochs=1",
          "--config.checkpoint_every_epochs=0"]
  for process in _two_processes(_fnn(tmp_path / "uninterrupted", *args)):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]

  first, second = _two_processes(_fnn(tmp_path / "interrupted", *args))
  epochs_seen = 0
  for line in first.stdout:  # process 0 logs; process 1, which gets the signal, does not
    epochs_seen += line.startswith("Epoch ")
    if epochs_seen == 3:
      time.sleep(random.Random().uniform(0, 0.3))  # at a random moment of epoch 4
      second.send_signal(signal.SIGTERM)
      break
  outputs = [first.communicate(timeout=120), second.communicate(timeout=120)]
  for process, (out, err) in zip((first, second), outputs):
    assert process.returncode == 0, err[-3000:]
  stopped_at = [re.search(r"process \d of 2: stopped at step (\d+)", err).group(1) for _, err in outputs]
  assert stopped_at[0] == stopped_at[1]
  status = json.loads((tmp_path / "interrupted" / "status.json").read_text())
  assert status["status"] == "preempted" and status["last_checkpoint_step"] == int(stopped_at[0])
  assert not (tmp_path / "interrupted" / "summary.json").exists()

  for process in _two_processes(_fnn(tmp_path / "interrupted", *args)):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
  for a, b in zip(_final_params(tmp_path / "uninterrupted"), _final_params(tmp_path / "interrupted")):
    np.testing.assert_array_equal(a, b)


def test_a_stalled_process_is_reported_by_the_other_which_exits_for_requeue(tmp_path):
  first, second = _two_processes(_fnn(tmp_path / "run", "--config.num_epochs=200", "--config.steps_per_dispatch=1",
                                      "--config.watchdog_seconds=10"))
  try:
    epochs_seen = 0
    for line in first.stdout:
      epochs_seen += line.startswith("Epoch ")
      if epochs_seen == 3:
        break
    second.send_signal(signal.SIGSTOP)
    stalled_at = time.monotonic()
    _, err = first.communicate(timeout=120)
    reported_after = time.monotonic() - stalled_at
  finally:
    second.kill()
    second.communicate()
  assert first.returncode == watchdog.EXIT_STUCK, err[-3000:]
  assert reported_after < 10 + 20  # the limit, plus the phase already under way and the 0.5 s polls
  stuck = re.search(r"process 0 of 2 stuck in ([a-z ]+) at step (\d+)", err)
  assert stuck, err[-3000:]
  status = json.loads((tmp_path / "run" / "status.json").read_text())
  assert status["status"] == "stuck" and status["stuck"]["phase"] == stuck.group(1)
  assert status["stuck"]["step"] == int(stuck.group(2)) and status["stuck"]["process"] == "process 0 of 2"
