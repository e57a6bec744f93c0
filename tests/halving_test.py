"""Successive halving: the weaker trials stop at each rung by the early-stopping mask, recorded, and a
killed search resumes to the same survivors and the same numbers."""

import json
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import ROOT, run_cli

from nn_jax.ablations import halving, sweep
from nn_jax.training.stopping import Stopper

# 6 trials x 2 seeds in two programs (hidden units 2 and 4); rungs at epochs 20, 40, 60: 6 -> 3 -> 2 -> 1.
SEARCH = '''
def get_sweep():
  return {"config": "experiments/house_mlp.py",
          "overrides": {"num_epochs": 80, "log_every_epochs": 10, "checkpoint_every_epochs": 10, "progress": False,
                        "checkpoint_min_interval_seconds": 0.0, "predict_examples": ()},
          "space": {"optimizer.learning_rate": ("log_uniform", 0.003, 0.3),
                    "model.hidden_units": ("choice", [(2,), (4,)])},
          "trials": 6, "seeds": [0, 1],
          "halving": {"metric": "train/loss", "every_epochs": 20, "keep": 0.5}}
'''


def _search(tmp_path):
  sweep_file = tmp_path / "search.py"
  sweep_file.write_text(SEARCH)
  return ["sweep", "--sweep", str(sweep_file), "--workdir"]


def _outcome(root):
  """Every run's status, epochs, params digest and metrics rows, and the rungs' rankings."""
  runs = {}
  for path in sorted(root.rglob("summary.json")):
    summary, status = json.loads(path.read_text()), json.loads((path.parent / "status.json").read_text())
    runs[str(path.parent.relative_to(root))] = (status["status"], summary["epochs"], summary.get("halted"),
                                                summary["params_digest"], (path.parent / "metrics.jsonl").read_text())
  return runs, halving.load(root)["rungs"]


def _session(tmp_path, runs: dict):
  """A trainer session's stand-in: {run directory name: validation/loss at epoch 10, or None (diverged)}."""
  workdirs = []
  for name, value in runs.items():
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    rows = [{"epoch": 10, "split": "validation", "loss": value}] if value is not None else []
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    workdirs.append(workdir)
  status = lambda: types.SimpleNamespace(update=lambda **fields: None)
  loop = types.SimpleNamespace(epoch=10, host_step=10, active=np.array([v is not None for v in runs.values()]),
                               stoppers=[Stopper() for _ in runs])
  loop.deactivate = lambda index: loop.active.__setitem__(index, False)
  return types.SimpleNamespace(loop=loop, runs=[types.SimpleNamespace(workdir=w, status=status()) for w in workdirs])


def test_a_rung_keeps_the_best_fraction_by_the_mean_over_seeds_and_halts_the_rest(tmp_path):
  # Trials a-e, two seeds each; e's second seed diverged, so e ranks last whatever its other seed did;
  # b and c tie, and the earlier trial goes first.
  losses = {"a": (0.5, 0.75), "b": (0.25, 0.375), "c": (0.3125, 0.3125), "d": (0.875, 0.125), "e": (0.01, None)}
  session = _session(tmp_path, {f"{t}/seed_{s}": v for t, values in losses.items() for s, v in enumerate(values)})
  points = {t: sweep.Point(t, {}, [None, None], trial=i) for i, t in enumerate(losses)}
  members = {t: [(session, 2 * i), (session, 2 * i + 1)] for i, t in enumerate(losses)}
  members["e"] = members["e"][:1]  # a diverged run is no longer a member
  ranking = halving._rank({"metric": "validation/loss", "keep": 0.5}, 1, 10, members, points)["ranking"]
  assert [(r["trial"], r["kept"]) for r in ranking] == [("b", True), ("c", True), ("d", True), ("a", False),
                                                         ("e", False)]
  assert ranking[0]["value"] == 0.3125 and ranking[-1]["seeds"] == 1
  assert session.loop.active.tolist() == [False, False, True, True, True, True, True, True, False, False]
  stopped = session.loop.stoppers[0].stopped
  assert stopped["rung"] == 1 and stopped["epoch"] == 10 and "ranked 4 of 5" in stopped["reason"]
  assert session.loop.stoppers[9].stopped is None  # the diverged run stays diverged, not halted


def test_rungs_before_the_last_epoch_and_the_survivors_rounded_up():
  assert halving.rung_epochs({"every_epochs": 250}, 2000) == [250, 500, 750, 1000, 1250, 1500, 1750]
  assert halving.rung_epochs({"every_epochs": 10}, 30) == [10, 20]
  assert [halving.survivors(n, 0.5) for n in (64, 5, 1)] == [32, 3, 1]
  assert halving.survivors(10, 0.25) == 3


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("halving")
  result = run_cli([*_search(tmp_path), tmp_path / "a"])
  assert result.returncode == 0, result.stderr
  return tmp_path / "a", result.stdout


@pytest.mark.slow
def test_rungs_halve_the_trials_and_each_halted_run_holds_what_it_trained(uninterrupted):
  root, stdout = uninterrupted
  runs, rungs = _outcome(root)
  assert "Successive halving: 2 programs" in stdout
  assert [len(r["ranking"]) for r in rungs] == [6, 3, 2] and [r["epoch"] for r in rungs] == [20, 40, 60]
  assert [sum(e["kept"] for e in r["ranking"]) for r in rungs] == [3, 2, 1]
  for rung in rungs:  # the kept are the best by the mean train loss over both seeds
    values = [e["value"] for e in rung["ranking"]]
    assert values == sorted(values) and all(e["seeds"] == 2 for e in rung["ranking"])
  assert len(runs) == 12
  by_status = {}
  for name, (status, epochs, halted, _, rows) in runs.items():
    by_status.setdefault(status, []).append(name)
    last_epoch = json.loads(rows.splitlines()[-1])["epoch"]
    if status == "halted":
      assert epochs == halted["epoch"] == 20 * halted["rung"] == last_epoch  # trained to its rung, not a step more
    else:
      assert status == "done" and epochs == last_epoch == 80 and halted is None
  assert len(by_status["done"]) == 2 and len(by_status["halted"]) == 10
  survivor = rungs[-1]["ranking"][0]["trial"]
  assert {name.split("/")[0] for name in by_status["done"]} == {survivor}


@pytest.mark.slow
@pytest.mark.parametrize("nth_save", [15, 27])  # at a rung, amid its saves (between rungs); amid a rung
def test_a_search_killed_during_or_between_rungs_resumes_to_the_same_survivors_bit_identical(
    tmp_path, uninterrupted, nth_save):
  command = _search(tmp_path)
  killed = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_injection.py"), "kill_after_save",
                           str(nth_save), "--", *command, str(tmp_path / "b")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
  assert killed.returncode == -signal.SIGKILL and "FAULT" in killed.stdout, killed.stderr[-2000:]
  resumed = run_cli([*command, tmp_path / "b"])
  assert resumed.returncode == 0, resumed.stderr
  assert "Resuming from checkpoint" in resumed.stdout
  assert _outcome(tmp_path / "b") == _outcome(uninterrupted[0])


def _hparams_events(path):
  from tensorboard.backend.event_processing import event_file_loader
  from tensorboard.plugins.hparams import plugin_data_pb2
  [events_file] = path.parent.glob(path.name + ".*")
  found = {}
  for event in event_file_loader.LegacyEventFileLoader(str(events_file)).Load():
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == "hparams":
        found[value.tag] = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
      elif event.summary.value:
        found[value.tag] = value.simple_value
  return found


@pytest.mark.slow
def test_tensorboard_hparams_reads_the_search_s_columns_and_every_run_s_values(uninterrupted):
  root, _ = uninterrupted
  experiment = _hparams_events(root / "hparams")["_hparams_/experiment"].experiment
  columns = {info.name: info for info in experiment.hparam_infos}
  assert set(columns) == {"optimizer.learning_rate", "model.hidden_units"}
  rate = columns["optimizer.learning_rate"].domain_interval
  assert (rate.min_value, rate.max_value) == (0.003, 0.3)
  assert list(columns["model.hidden_units"].domain_discrete.values[i].string_value for i in range(2)) == ["[2]", "[4]"]
  assert [m.name.tag for m in experiment.metric_infos] == ["final/train/loss", "final/train/mse", "final/train/rmse"]
  for summary_path in root.rglob("summary.json"):
    run = _hparams_events(summary_path.parent / "tensorboard" / "hparams")
    summary = json.loads(summary_path.read_text())
    config = json.loads((summary_path.parent / "config.json").read_text())
    start = run["_hparams_/session_start_info"].session_start_info.hparams
    assert start["optimizer.learning_rate"].number_value == config["optimizer"]["learning_rate"]
    assert start["model.hidden_units"].string_value == json.dumps(config["model"]["hidden_units"])
    assert start["seed"].number_value == config["seed"] and "num_epochs" not in start  # how long: not what
    assert run["final/train/rmse"] == pytest.approx(summary["final"]["train"]["rmse"], rel=1e-6)
    assert run["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS
