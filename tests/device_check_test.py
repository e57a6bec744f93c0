"""make device-check: stages in subprocesses within a budget, results written as they come."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from tools import device_check


def test_a_stage_that_overruns_is_cut_and_recorded(tmp_path):
  check = device_check.Check(tmp_path, budget=30)
  done = check.run([sys.executable, "-c", "import time; time.sleep(10)"], limit=1)
  assert done["returncode"] is None and done["timed_out"] == 1.0
  check.record("inventory", {"backend": "cpu", "device_kind": "cpu", "devices": ["cpu:0"], "python": "3.11",
                             "versions": {"jax": "x"}})
  assert json.loads((tmp_path / "device_check.json").read_text())["stages"]["inventory"]["backend"] == "cpu"
  assert "| device | cpu (cpu, 1 device(s)); Python 3.11; jax x |" in (tmp_path / "device_check.md").read_text()


def test_the_summary_reports_runs_determinism_and_failures():
  run = {"test_accuracy": 0.9901, "wall_from_launch_seconds": 9.5, "wall_seconds": 7.0, "compile_seconds": 2.0,
         "train_seconds": 1.5, "train_images_per_second": 400000.0,
         "time_to_target": {"epoch": 6, "seconds_from_launch": 6.2}}
  text = device_check.markdown({"started": "now", "stages": {
      "cnn_seed0": run, "cnn_repeat": {**run, "bit_identical_to_first": True},
      "cnn_lr_sweep": {"wall_from_launch_seconds": 25.0, "runs_in_program": 15,
                       "test_accuracy": {"a/seed_0": 0.9871, "b/seed_0": 0.9912}},
      "cnn_search": {"wall_from_launch_seconds": 48.0, "runs_in_program": 64,
                     "test_accuracy": {"trial-0/seed_0": 0.9652, "trial-1/seed_0": 0.9905}},
      "cnn_seeds": {"seed_1": {"output": "Traceback: boom"}}}})
  assert "| train-cnn seed 0, cold | test accuracy 99.01%; wall 9.5 s from launch" in text
  assert "99.0% at 6.2 s (epoch 6)" in text and "bit-identical (params and every logged metric) | True |" in text
  assert "| train-cnn seed_1 | failed: " in text
  assert "| CNN learning-rate sweep, 2 runs in programs of 15 | wall 25.0 s from launch; test accuracy 98.71% to 99.12% |" in text
  assert "| CNN Adam search with halving, 2 runs in programs of 64 | wall 48.0 s from launch; test accuracy 96.52% to " \
         "99.05% |" in text


@pytest.mark.slow
def test_the_fast_tests_stage_s_pytest_command_runs_without_pytest_s_cache():
  # The stage passes -p no:cacheprovider (nothing written into the repository's copy on the node): the
  # suite's compilation and MNIST caches then live in temporary folders.
  done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                         "tests/search_test.py", "-k", "bad_distributions"], capture_output=True, text=True, cwd=ROOT,
                        timeout=300)
  assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-2000:]
