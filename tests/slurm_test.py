"""Sweeps on a cluster through submitit: the job array SLURM is sent, and tasks requeued after preemption."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, run_cli

from nn_jax import cli
from nn_jax.ablations import slurm
from nn_jax.common.errors import UserError
from nn_jax.training import trainer

GRID = '''
def get_sweep():
  return {"config": "experiments/house_mlp.py",
          "overrides": {"num_epochs": 20, "progress": False},
          "axes": {"model.hidden_units": [(2,), (4,), (8,)]},
          "seeds": [0, 1],
          "slurm": {"timeout_min": 30}}
'''


def _sweep_arguments(sweep_file, root, *args):
  return ["sweep", "--sweep", str(sweep_file), "--workdir", str(root), *args]


def _sweep_command(sweep_file, root, *args):
  return [sys.executable, "-m", "nn_jax", *_sweep_arguments(sweep_file, root, *args)]


def test_slurm_gets_one_array_task_per_point_requeueable(tmp_path, monkeypatch, capsys):
  # A stand-in sbatch keeps the script it is given and answers as SLURM's does.
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {bin_dir}/submitted.sh\necho "Submitted batch job 4242"\n')
  (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it to know SLURM is there
  for tool in ("sbatch", "srun"):
    (bin_dir / tool).chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  sweep_file = tmp_path / "grid.py"
  sweep_file.write_text(GRID)
  assert cli.main(_sweep_arguments(sweep_file, tmp_path / "sweep", "--launcher", "slurm",
                                   "--slurm.slurm_partition=gpu", "--slurm.gpus_per_node=1")) == 0
  assert "Submitted 3 tasks (one per unfinished program) as job 4242" in capsys.readouterr().out
  script = (bin_dir / "submitted.sh").read_text()
  for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
               "#SBATCH --time=30", "#SBATCH --requeue", "#SBATCH --signal=USR2@120", "#SBATCH --cpus-per-task=4"):
    assert line in script.splitlines(), script
  assert "-m submitit.core._submit" in script
  assert not list((tmp_path / "sweep").rglob("summary.json"))  # submitted, not run here


@pytest.mark.parametrize("arguments,message", [
    (["--launcher", "submitit_local", "--slurm.no_such_parameter=1"], "no_such_parameter"),
    (["--launcher", "slurm"], "srun"),
    (["--slurm.timeout_min=5"], "need --launcher slurm"),
    (["--launcher", "slurm", "--slurm.timeout_min"], "malformed --slurm.timeout_min"),
])
def test_bad_slurm_parameters_are_refused_before_anything_is_written(tmp_path, capsys, arguments, message):
  sweep_file = tmp_path / "grid.py"
  sweep_file.write_text(GRID)
  assert cli.main(_sweep_arguments(sweep_file, tmp_path / "sweep", *arguments)) == 2
  err = capsys.readouterr().err
  assert message in err and len(err.splitlines()) == 1
  assert not (tmp_path / "sweep").exists()


def test_a_slurm_entry_that_is_not_a_dict_is_refused(tmp_path, capsys):
  sweep_file = tmp_path / "grid.py"
  sweep_file.write_text(GRID.replace('"slurm": {"timeout_min": 30}', '"slurm": 30'))
  assert cli.main(_sweep_arguments(sweep_file, tmp_path / "sweep", "--launcher", "submitit_local")) == 2
  assert "slurm must be a dict" in capsys.readouterr().err and not (tmp_path / "sweep").exists()


def test_overrides_parse_as_literals():
  assert slurm.parse_overrides(["--slurm.timeout_min=90", "--slurm.slurm_partition=gpu",
                                "--slurm.slurm_additional_parameters={'requeue': True}"]) == {
      "timeout_min": 90, "slurm_partition": "gpu", "slurm_additional_parameters": {"requeue": True}}
  with pytest.raises(UserError, match="malformed"):
    slurm.parse_overrides(["--slurm.=3"])


LONG = '''
def get_sweep():
  return {"config": "experiments/fnn_binary.py",
          "overrides": {"num_epochs": 300, "log_every_epochs": 5, "checkpoint_every_epochs": 50,
                        "checkpoint_min_interval_seconds": 0.0, "progress": False},
          "seeds": [0, 1]}
'''


@pytest.mark.slow
def test_a_preempted_task_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path):
  sweep_file = tmp_path / "long.py"
  sweep_file.write_text(LONG)
  uninterrupted = run_cli(_sweep_arguments(sweep_file, tmp_path / "here"))
  assert uninterrupted.returncode == 0, uninterrupted.stderr

  root = tmp_path / "tasks"
  process = subprocess.Popen(_sweep_command(sweep_file, root, "--launcher", "submitit_local"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  metrics = root / "base" / "seed_0" / "metrics.jsonl"
  deadline = time.monotonic() + 300
  while not (metrics.exists() and metrics.read_text().count('"train"') >= 4):  # 20 epochs in
    assert time.monotonic() < deadline and process.poll() is None, process.communicate()
    time.sleep(0.2)
  task_pid = json.loads((root / "base" / "seed_0" / ".lock").read_text())["pid"]
  os.kill(task_pid, slurm.preemption_signal())  # what SLURM sends before preempting or at the time limit
  out, err = process.communicate(timeout=600)
  assert process.returncode == 0, err

  for seed in (0, 1):
    status = json.loads((root / "base" / f"seed_{seed}" / "status.json").read_text())
    assert status["status"] == "done" and status["preemptions"] == 1
    here, there = (jax.tree_util.tree_leaves(trainer.restore_for_inference(r / "base" / f"seed_{seed}")[2])
                   for r in (tmp_path / "here", root))
    for a, b in zip(here, there):
      np.testing.assert_array_equal(a, b)
  logs = "".join(p.read_text() for p in (root / "submitit").rglob("*.err"))
  assert "Requeued job" in logs
