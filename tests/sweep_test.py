"""Sweeps: vectorized seeds equal seeds run one by one, restarts finish only what is missing, reports."""

import csv
import json
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, experiment
from nn_jax import cli, report, sweep, train, vectorized


def _params(workdir):
  return jax.tree_util.tree_leaves(train.restore_for_inference(workdir)[2])


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name,overrides", [
    ("house_mlp", ("num_epochs=300", "checkpoint_every_epochs=300")),  # full batch: one scan, vmapped
    ("recurrent_series", ("dataset.name=noisy_sine", "num_epochs=3", "model.units=8", "log_every_epochs=1")),
])
def test_vectorized_seeds_equal_seeds_run_one_by_one(tmp_path, quiet_progress, name, overrides):
  seeds = (0, 1, 2)
  configs = [experiment(name, *overrides, f"seed={s}") for s in seeds]
  vectorized.train_seeds(configs, [tmp_path / "vmapped" / str(s) for s in seeds])
  for seed, config in zip(seeds, configs):
    train.train_and_evaluate(config, tmp_path / "alone" / str(seed))
  for seed in seeds:
    alone, vmapped = tmp_path / "alone" / str(seed), tmp_path / "vmapped" / str(seed)
    for a, b in zip(_params(alone), _params(vmapped)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    rows_a, rows_b = _rows(alone), _rows(vmapped)
    assert [(r["epoch"], r["split"]) for r in rows_a] == [(r["epoch"], r["split"]) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
      np.testing.assert_allclose(ra["loss"], rb["loss"], rtol=2e-4, atol=1e-6)
    assert json.loads((vmapped / "status.json").read_text())["status"] == "done"
  # The seeds really differ: vectorizing did not train one seed three times.
  assert not np.allclose(_params(tmp_path / "vmapped" / "0")[0], _params(tmp_path / "vmapped" / "1")[0])


def test_configs_that_differ_beyond_the_seed_are_not_vectorized():
  configs = [experiment("house_mlp", "seed=0"), experiment("house_mlp", "seed=1", "optimizer.learning_rate=0.1")]
  with pytest.raises(vectorized.CannotVectorize, match="differ in more than the seed"):
    vectorized.check_vectorizable(configs)


SWEEP = '''
def get_sweep():
  return {"config": "experiments/house_mlp.py",
          "overrides": {"num_epochs": 200, "checkpoint_every_epochs": 200, "progress": False},
          "axes": {"model.hidden_units": [(2,), (4,), (8,)]},
          "seeds": [0, 1]}
'''


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
