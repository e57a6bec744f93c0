"""Sweeps: a grid of ordinary runs, seeds vectorized; restarts finish only what is missing."""

import csv
import json
import signal
import subprocess
import sys

import pytest

from conftest import ROOT
from nn_jax import cli, report, sweep


SWEEP = '''
def get_sweep():
  return {"config": "experiments/house_mlp.py",
          "overrides": {"num_epochs": 200, "checkpoint_every_epochs": 200, "progress": False},
          "axes": {"model.hidden_units": [(2,), (4,), (8,)]},
          "seeds": [0, 1]}
'''


@pytest.mark.slow
def test_killed_sweep_restarted_finishes_only_the_missing_runs(tmp_path):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP)
  root = tmp_path / "sweep"
  command = [sys.executable, "-m", "nn_jax", "sweep", "--sweep", str(sweep_file), "--workdir", str(root)]
  process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("== hidden_units-(8,)"):  # two points done, the third starting
      process.send_signal(signal.SIGKILL)
      break
  process.wait(timeout=60)
  process.stdout.close()
  done_before = {p.parent: p.stat().st_mtime_ns for p in root.rglob("summary.json")}
  assert len(done_before) == 4

  restarted = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert restarted.returncode == 0, restarted.stderr
  assert "== hidden_units-(2,): 2 of 2 runs done" in restarted.stdout
  summaries = {p.parent: p.stat().st_mtime_ns for p in root.rglob("summary.json")}
  assert len(summaries) == 6
  assert all(summaries[run] == mtime for run, mtime in done_before.items())  # finished runs untouched

  table = report.write_report(root)
  assert table.count("\n") == 2 + 3  # header, rule, one line per point
  assert "hidden_units=[4] | 2 |" in table and " ± " in table
  with open(root / "runs.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 6 and {r["seed"] for r in rows} == {"0", "1"}
  assert float(rows[0]["train/loss"]) > 0
  assert (root / "curves.png").stat().st_size > 1000 and (root / "final.png").stat().st_size > 1000


def test_bad_sweep_is_refused_before_any_training(tmp_path, capsys):
  sweep_file = tmp_path / "bad.py"
  sweep_file.write_text(SWEEP.replace('"model.hidden_units"', '"model.hidden_size"'))
  assert cli.main(["sweep", "--sweep", str(sweep_file), "--workdir", str(tmp_path / "s")]) == 2
  assert "unknown config key 'model.hidden_size'" in capsys.readouterr().err
  assert not (tmp_path / "s").exists()


def test_point_names_are_folder_names():
  assert sweep.point_name({"model.cell": "gru", "model.units": 50}) == "cell-gru_units-50"


def test_points_expand_to_validated_configs_per_seed(tmp_path):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP)
  expanded = sweep.expand(sweep.load_sweep(str(sweep_file)))
  assert [point for point, _ in expanded] == [{"model.hidden_units": h} for h in [(2,), (4,), (8,)]]
  configs = expanded[1][1]
  assert [c.seed for c in configs] == [0, 1] and configs[0].model.hidden_units == (4,)
  assert configs[0].num_epochs == 200 and configs[0].progress is False


@pytest.mark.slow
def test_a_sweep_trains_each_points_seeds_as_one_program(tmp_path, quiet_progress):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP.replace("[(2,), (4,), (8,)]", "[(2,)]"))
  assert sweep.run_sweep(str(sweep_file), tmp_path / "s")
  for seed in (0, 1):
    summary = json.loads((tmp_path / "s" / "hidden_units-(2,)" / f"seed_{seed}" / "summary.json").read_text())
    assert summary["vectorized_seeds"] == 2
