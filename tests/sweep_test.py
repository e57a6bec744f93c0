"""Sweeps: a grid of ordinary runs trained program by program; restarts finish only what is missing."""

import csv
import json
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_cli

from nn_jax import cli
from nn_jax.ablations import report, sweep
from nn_jax.common.errors import UserError
from nn_jax.training import auto, loop

SWEEP = '''
def get_sweep():
  return {"config": "experiments/house_mlp.py",
          "overrides": {"num_epochs": 200, "checkpoint_every_epochs": 200, "progress": False},
          "axes": {"model.hidden_units": [(2,), (4,), (8,)]},
          "seeds": [0, 1]}
'''


def _tiny_sweep(tmp_path):
  """The command that runs SWEEP (written into tmp_path), and the sweep's folder."""
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP)
  root = tmp_path / "sweep"
  return [sys.executable, "-m", "nn_jax", "sweep", "--sweep", str(sweep_file), "--workdir", str(root)], root


@pytest.mark.slow
def test_killed_sweep_restarted_finishes_only_the_missing_runs(tmp_path):
  command, root = _tiny_sweep(tmp_path)
  process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("== hidden_units-(8,)"):  # two points done, the third starting
      process.send_signal(signal.SIGKILL)
      break
  process.wait(timeout=60)
  process.stdout.close()
  done_before = {p.parent: p.stat().st_mtime_ns for p in root.rglob("summary.json")}
  assert len(done_before) == 4

  restarted = run_cli(command[3:])
  assert restarted.returncode == 0, restarted.stderr
  assert "== hidden_units-(2,): 2 of 2 runs done" in restarted.stdout
  summaries = {p.parent: p.stat().st_mtime_ns for p in root.rglob("summary.json")}
  assert len(summaries) == 6
  assert all(summaries[run] == mtime for run, mtime in done_before.items())  # finished runs untouched

  table = report.write_report(root)
  assert len(table.split("\n\n")[0].splitlines()) == 2 + 3  # header, rule, one line per point; statistics below
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
  assert [point.values for point in expanded] == [{"model.hidden_units": h} for h in [(2,), (4,), (8,)]]
  assert [point.name for point in expanded] == ["hidden_units-(2,)", "hidden_units-(4,)", "hidden_units-(8,)"]
  configs = expanded[1].configs
  assert [c.seed for c in configs] == [0, 1] and configs[0].model.hidden_units == (4,)
  assert configs[0].num_epochs == 200 and configs[0].progress is False


@pytest.mark.slow
def test_a_sweep_trains_each_points_seeds_as_one_program(tmp_path, quiet_progress):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP.replace("[(2,), (4,), (8,)]", "[(2,)]"))
  assert sweep.run_sweep(str(sweep_file), tmp_path / "s")
  for seed in (0, 1):
    summary = json.loads((tmp_path / "s" / "hidden_units-(2,)" / f"seed_{seed}" / "summary.json").read_text())
    assert summary["runs_in_program"] == 2


@pytest.mark.slow
def test_a_program_too_large_for_the_device_memory_is_cut_into_runs_that_fit(tmp_path, quiet_progress, monkeypatch,
                                                                             capsys):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP.replace("[(2,), (4,), (8,)]", "[(2,)]").replace("[0, 1]", "[0, 1, 2]"))
  assert sweep.run_sweep(str(sweep_file), tmp_path / "whole")
  # A device whose free memory is 0.7/0.9 of what XLA counts for the three runs' program (plenty before it
  # is counted, when the data's placement asks): at most two runs fit.
  counted = []
  bytes_needed = loop.EpochLoop.bytes_needed
  monkeypatch.setattr(loop.EpochLoop, "bytes_needed", lambda self: counted.append(bytes_needed(self)) or counted[-1])
  monkeypatch.setattr(auto, "free_memory", lambda: counted[0] * 0.7 / 0.9 if counted else 2**40)
  capsys.readouterr()
  assert sweep.run_sweep(str(sweep_file), tmp_path / "cut")
  assert "3 runs need" in capsys.readouterr().out
  for seed in (0, 1, 2):
    whole, cut = (json.loads((tmp_path / name / "hidden_units-(2,)" / f"seed_{seed}" / "summary.json").read_text())
                  for name in ("whole", "cut"))
    assert whole["runs_in_program"] == 3 and cut["runs_in_program"] < 3
    assert cut["final"]["train"]["mse"] == pytest.approx(whole["final"]["train"]["mse"], rel=1e-4)


def test_runs_that_differ_only_on_the_run_axis_form_one_program_each_chunked(tmp_path):
  grid = SWEEP.replace('"model.hidden_units": [(2,), (4,), (8,)]', '"model.hidden_units": [(2,), (4,)], '
                       '"optimizer.learning_rate": [0.01, 0.1], "optimizer.kwargs.momentum": [0.5]')
  sweep_file = tmp_path / "grid.py"
  for cap, sizes in [(0, [4, 4]), (3, [3, 1, 3, 1])]:
    sweep_file.write_text(grid.replace('"seeds": [0, 1]', f'"seeds": [0, 1], "runs_per_program": {cap}'))
    spec = sweep.load_sweep(str(sweep_file))
    groups = sweep.programs(spec, sweep.expand(spec), tmp_path / "s")
    assert [len(runs) for runs in groups] == sizes
    # A program holds one width with its learning rates and seeds, in the grid's order.
    assert {c.model.hidden_units for c, _ in groups[0]} == {(2,)}
    assert [(c.optimizer.learning_rate, c.seed) for c, _ in groups[0]][:3] == [(0.01, 0), (0.01, 1), (0.1, 0)]
  assert sweep.program_name(groups[0]) == "hidden_units-(2,)_learning_rate-0.01_momentum-0.5 (+1 points)"


@pytest.mark.parametrize("text,message", [
    (SWEEP.replace('"seeds": [0, 1]', '"seeds": [0, 1], "runs_per_program": -1'), "runs_per_program must be"),
    (SWEEP.replace('"seeds": [0, 1]', '"seeds": [0, 0]'), "repeat a seed"),
    (SWEEP.replace('"seeds": [0, 1]', '"seeds": []'), "seeds is empty"),
    (SWEEP.replace("[(2,), (4,), (8,)]", "[]"), "has no values, so the grid is empty"),
    ("def get_sweep():\n  return 1 / 0\n", "raised ZeroDivisionError"),
    ("def get_sweep():\n  return None\n", "returned NoneType, not a dict"),
    (SWEEP.replace('"seeds": [0, 1]', '"seeds": 3'), "seeds must be a list of ints"),
    (SWEEP.replace('"seeds": [0, 1]', '"seeds": [0, 1], "pictures": "no"'), "pictures must be True or False"),
    (SWEEP.replace('{"model.hidden_units": [(2,), (4,), (8,)]}', '["model.hidden_units"]'), "axes must be a dict"),
    (SWEEP.replace('"overrides": {', '"overrides": [{').replace('"progress": False}', '"progress": False}]'),
     "overrides must be a dict"),
    (SWEEP.replace("[(2,), (4,), (8,)]", "8"), "must be a list of values, got 8"),
    (SWEEP.replace("[(2,), (4,), (8,)]", "[(2,), (4,), (2,)]"), "repeats a value"),
    (SWEEP.replace('"model.hidden_units": [(2,), (4,), (8,)]', '"seed": [3, 4]'), "list the seeds in seeds"),
])
def test_a_bad_sweep_file_is_one_line_before_anything_runs(tmp_path, capsys, text, message):
  sweep_file = tmp_path / "bad.py"
  sweep_file.write_text(text)
  assert cli.main(["sweep", "--sweep", str(sweep_file), "--workdir", str(tmp_path / "s")]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1
  assert not (tmp_path / "s").exists()


DIVERGING = '''
def get_sweep():
  return {"config": "experiments/fnn_binary.py",
          "overrides": {"num_epochs": 2, "progress": False, "checkpoint_min_interval_seconds": 0.0},
          "axes": {"optimizer.learning_rate": [1e9, 1e-3]},
          "seeds": [0]}
'''


@pytest.mark.slow
def test_a_diverging_run_is_recorded_and_the_others_go_on(tmp_path, quiet_progress):
  sweep_file = tmp_path / "diverging.py"
  sweep_file.write_text(DIVERGING)
  root = tmp_path / "s"
  assert sweep.run_sweep(str(sweep_file), root)
  assert json.loads((root / "learning_rate-1000000000.0" / "seed_0" / "status.json").read_text())["status"] == "diverged"
  # Both rates trained as one program: the diverged run was masked out and the other went on to the end.
  survivor = json.loads((root / "learning_rate-0.001" / "seed_0" / "summary.json").read_text())
  assert survivor["runs_in_program"] == 2 and survivor["epochs"] == 2
  assert sweep.run_sweep(str(sweep_file), root)  # rerunning does not abort on it either
  table = report.write_report(root)
  assert "Diverged, so no final metrics:" in table and "learning_rate-1000000000.0/seed_0: training diverged" in table


@pytest.mark.slow
def test_an_edited_sweep_is_refused_naming_the_points_whose_config_changed(tmp_path, quiet_progress):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(SWEEP.replace("[(2,), (4,), (8,)]", "[(2,)]"))
  root = tmp_path / "s"
  assert sweep.run_sweep(str(sweep_file), root)
  sweep_file.write_text(SWEEP.replace("[(2,), (4,), (8,)]", "[(2,)]").replace('"num_epochs": 200', '"num_epochs": 200, '
                                                                               '"optimizer.learning_rate": 0.1'))
  with pytest.raises(UserError, match="configs changed since these runs trained: hidden_units-\\(2,\\)/seed_0"):
    sweep.run_sweep(str(sweep_file), root)


# Six runs of one program: two learning rates x three seeds.
KILLABLE = '''
def get_sweep():
  return {"config": "experiments/fnn_binary.py",
          "overrides": {"num_epochs": 2, "progress": False, "checkpoint_every_steps": 5,
                        "checkpoint_min_interval_seconds": 0.0, "keep_checkpoints": 10},
          "axes": {"optimizer.learning_rate": [1e-3, 3e-3]},
          "seeds": [0, 1, 2]}
'''


def _digests(root):
  return {str(p.parent.relative_to(root)): (json.loads(p.read_text())["params_digest"],
                                            (p.parent / "metrics.jsonl").read_text())
          for p in sorted(root.rglob("summary.json"))}


@pytest.mark.slow
@pytest.mark.parametrize("nth_save", [8, 12])  # kills between the runs' saves of one step (8) and after a whole one
def test_a_killed_sweep_resumes_vectorized_and_ends_bit_identical(tmp_path, nth_save):
  sweep_file = tmp_path / "killable.py"
  sweep_file.write_text(KILLABLE)
  command = ["sweep", "--sweep", str(sweep_file), "--workdir"]
  unkilled = run_cli([*command, tmp_path / "a"])
  assert unkilled.returncode == 0, unkilled.stderr
  killed = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_injection.py"), "kill_after_save",
                           str(nth_save), "--", *command, str(tmp_path / "b")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
  assert killed.returncode == -signal.SIGKILL and "FAULT" in killed.stdout
  resumed = run_cli([*command, tmp_path / "b"])
  assert resumed.returncode == 0, resumed.stderr
  assert "Resuming from checkpoint" in resumed.stdout and "one by one" not in resumed.stdout  # one program again
  assert "6 runs in 1 programs" in resumed.stdout
  assert _digests(tmp_path / "a") == _digests(tmp_path / "b") and len(_digests(tmp_path / "a")) == 6


@pytest.mark.slow
def test_sigterm_between_or_during_points_stops_the_sweep_cleanly(tmp_path):
  command, root = _tiny_sweep(tmp_path)
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("== hidden_units-(4,)"):
      process.send_signal(signal.SIGTERM)
      break
  out, err = process.communicate(timeout=120)
  assert process.returncode == 0, err
  assert "Sweep stopped; run the same command again" in out
  assert not (root / "hidden_units-(8,)").exists()  # the later points never started
  finished = run_cli(command[3:])
  assert finished.returncode == 0, finished.stderr
  assert len(list(root.rglob("summary.json"))) == 6


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a_sweep_killed_at_a_random_moment_ends_bit_identical(tmp_path, seed):
  sweep_file = tmp_path / "killable.py"
  # Two seeds per point: four runs still train as one program, with two thirds of the six runs' saves.
  sweep_file.write_text(KILLABLE.replace('"num_epochs": 2', '"num_epochs": 6, "log_every_epochs": 1')
                        .replace('"seeds": [0, 1, 2]', '"seeds": [0, 1]'))
  command = [sys.executable, "-m", "nn_jax", "sweep", "--sweep", str(sweep_file), "--workdir"]
  assert run_cli([*command[3:], tmp_path / "a"]).returncode == 0
  process = subprocess.Popen(command + [str(tmp_path / "b")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  for line in process.stdout:
    if line.startswith("Epoch 1/"):
      time.sleep(random.Random(seed).uniform(0.0, 0.6))  # somewhere in the later epochs: a step, a save, a write
      process.kill()
      break
  process.wait(timeout=60)
  process.stdout.close()
  assert process.returncode == -signal.SIGKILL
  assert not list((tmp_path / "b").rglob("summary.json"))  # the kill cut the sweep short
  resumed = run_cli([*command[3:], tmp_path / "b"])
  assert resumed.returncode == 0, resumed.stderr
  assert "one by one" not in resumed.stdout
  assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
