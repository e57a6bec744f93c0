"""Early stopping and stopping at the target: alone, resumed, and per seed when vmapped."""

import json

import jax
import numpy as np
import pytest
from conftest import experiment

from nn_jax.training import stopping, trainer

STOP = ("num_epochs=60", "log_every_epochs=1", "dataset.validation_fraction=0.2", "stop.metric=validation/loss",
        "stop.patience=3", "checkpoint_min_interval_seconds=0")


def test_patience_and_min_delta():
  stopper = stopping.Stopper(metric="validation/loss", mode="min", patience=2, min_delta=0.01)
  assert not stopper.update(1, 10, {"validation/loss": 1.0})
  assert not stopper.update(2, 20, {"validation/loss": 0.995})  # not better by more than 0.01
  assert stopper.update(3, 30, {"validation/loss": 0.999})
  assert stopper.stopped["epoch"] == 3 and stopper.best_epoch == 1 and "in 2 evaluations" in stopper.stopped["reason"]
  restored = stopping.Stopper.from_config(experiment("fnn_binary"), json.loads(json.dumps(stopper.state())))
  assert restored.state() == stopper.state()


def test_the_target_is_reached_the_metric_s_way():
  assert stopping.reached("test/accuracy", 0.99, 0.99) and not stopping.reached("test/accuracy", 0.98, 0.99)
  assert stopping.reached("test/rmse", 19.0, 20.0) and not stopping.reached("test/rmse", 21.0, 20.0)


@pytest.mark.slow
def test_a_run_stops_early_says_why_and_marks_its_best(tmp_path, quiet_progress):
  summary = trainer.train_and_evaluate(experiment("fnn_binary", *STOP), tmp_path)
  stopped = summary["stopped_early"]
  assert stopped["epoch"] < 60 and summary["epochs"] == stopped["epoch"] and "did not improve" in stopped["reason"]
  assert summary["best"]["epoch"] == stopped["epoch"] - 3 and summary["best"]["metric"] == "validation/loss"
  status = json.loads((tmp_path / "status.json").read_text())
  assert status["status"] == "done" and status["message"].startswith("stopped early:")
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert max(r["epoch"] for r in rows) == stopped["epoch"] and {r["split"] for r in rows} == {
      "train", "validation", "test"}


@pytest.mark.slow
def test_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path, quiet_progress):
  straight = trainer.train_and_evaluate(experiment("fnn_binary", *STOP), tmp_path / "straight")
  trainer.train_and_evaluate(experiment("fnn_binary", *STOP[1:], "num_epochs=5"), tmp_path / "resumed")
  resumed = trainer.train_and_evaluate(experiment("fnn_binary", *STOP), tmp_path / "resumed")
  assert resumed["stopped_early"] == straight["stopped_early"] and resumed["params_digest"] == straight["params_digest"]


@pytest.mark.slow
def test_stop_at_target(tmp_path, quiet_progress):
  summary = trainer.train_and_evaluate(experiment("fnn_binary", "num_epochs=60", "log_every_epochs=1",
                                                  "target_metric=test/accuracy", "target_value=0.9",
                                                  "stop.at_target=True"), tmp_path)
  assert summary["stopped_early"]["reason"] == "test/accuracy reached 0.9"
  assert summary["epochs"] == summary["time_to_target"]["epoch"] < 60


@pytest.mark.slow
def test_vectorized_seeds_stop_each_on_its_own_as_alone(tmp_path, quiet_progress):
  seeds = (0, 1, 2)
  configs = [experiment("recurrent_series", "dataset.name=noisy_sine", "model.units=8", *STOP, f"seed={s}",
                        "optimizer.learning_rate=0.01", "stop.min_delta=0.001", "checkpoint_every_epochs=0")
             for s in seeds]  # stop at 16-23; saved at the end only: the stop is what is compared
  together = trainer.train(configs, [tmp_path / "v" / str(s) for s in seeds])
  alone = [trainer.train_and_evaluate(config, tmp_path / "a" / str(config.seed)) for config in configs]
  assert len({s["epochs"] for s in together}) > 1  # they stopped at different epochs
  for v, a, seed in zip(together, alone, seeds):
    assert v["epochs"] == a["epochs"] and v["stopped_early"]["epoch"] == a["stopped_early"]["epoch"]
    params = [jax.tree_util.tree_leaves(trainer.restore_for_inference(tmp_path / w / str(seed))[2]) for w in "va"]
    for x, y in zip(*params):
      np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


@pytest.mark.slow
def test_a_run_killed_before_it_stops_resumes_and_stops_at_the_same_epoch(tmp_path):
  import signal
  import subprocess
  import sys
  from conftest import ROOT, run_cli
  args = ["train", "--config", str(ROOT / "experiments" / "fnn_binary.py"), "--config.progress=False",
          *[f"--config.{o}" for o in STOP]]
  straight = run_cli([*args, "--workdir", tmp_path / "a"])
  assert straight.returncode == 0, straight.stderr
  killed = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_injection.py"), "kill_after_save", "4", "--",
                           *args, "--workdir", str(tmp_path / "b")], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
  assert killed.returncode == -signal.SIGKILL
  resumed = run_cli([*args, "--workdir", tmp_path / "b"])
  assert resumed.returncode == 0, resumed.stderr
  a, b = (json.loads((tmp_path / w / "summary.json").read_text()) for w in "ab")
  assert a["stopped_early"] == b["stopped_early"] and a["params_digest"] == b["params_digest"]
  assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
