"""`make train-mlp` and `make train-cnn` as a user runs them, then `predict` from the run directory."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, needs_shared_tfds, subprocess_env

pytestmark = pytest.mark.slow  # subprocesses of the real CLI: the full tier (make test)


def _make(target: str, workdir, args: str) -> subprocess.CompletedProcess:
  return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target, f"WORKDIR={workdir}", f"ARGS={args}"],
                        capture_output=True, text=True, env=subprocess_env(), timeout=600)


def test_make_train_mlp_writes_a_complete_run_directory(tmp_path):
  workdir = tmp_path / "house"
  result = _make("train-mlp", workdir, "--config.num_epochs=300 --config.seed=3")
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert "hidden_0" in out and "output" in out  # the model summary's layers
  assert [line.split(":")[0] for line in out.splitlines() if line.startswith("Epoch ")] == [
      f"Epoch {e}/300" for e in (100, 200, 300)]
  assert "Predicted price for 110 m², 7 years: " in out and "Predicted price for 85 m², 12 years: " in out

  config = json.loads((workdir / "config.json").read_text())
  assert config["num_epochs"] == 300 and config["seed"] == 3 and config["model"]["hidden_units"] == [4]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows] == list(range(1, 301)) and {r["split"] for r in rows} == {"train"}
  assert rows[-1]["loss"] < rows[0]["loss"]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["epochs"] == 300 and summary["steps"] == 300
  assert summary["final"]["train"]["loss"] < rows[0]["loss"]
  assert {"jax", "flax", "optax"} <= set(summary["versions"]) and summary["device_kind"] and summary["cpu"]
  assert summary["compile_seconds"] > 0 and summary["train_seconds"] > 0
  assert len(summary["predictions"]) == 2
  assert (workdir / "loss.png").stat().st_size > 1000
  # TensorBoard reads the event files (written without TensorFlow).
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(workdir / "tensorboard"))
  events.Reload()
  losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
  assert [step for step, _ in losses] == list(range(1, 301))
  assert losses[-1][1] == pytest.approx(rows[-1]["loss"], rel=1e-6)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["300"]

  predicted = subprocess.run([sys.executable, "-m", "nn_jax", "predict", "--workdir", str(workdir), "--input", "110,7"],
                             capture_output=True, text=True, cwd=ROOT)
  assert predicted.returncode == 0, predicted.stderr
  expected = summary["predictions"][0]["prediction"]
  assert f"Predicted price for 110 m², 7 years: {expected:.1f} t€" in predicted.stdout


@needs_shared_tfds
def test_make_train_cnn_two_step_smoke(tmp_path, mnist_cache):
  workdir = tmp_path / "cnn"
  args = ("--config.num_epochs=1 --config.batch_size=50 --config.dataset.train_examples=100 "
          "--config.dataset.test_examples=300 --config.eval_batch_size=128 --config.target_value=0.0")
  result = _make("train-cnn", workdir, args)
  assert result.returncode == 0, result.stderr
  assert "Test accuracy: " in result.stdout
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["steps"] == 2
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert {(r["epoch"], r["split"]) for r in rows} == {(1, "train"), (1, "test")}
  assert all({"loss", "accuracy"} <= set(r) for r in rows)
  assert (workdir / "loss.png").is_file() and (workdir / "accuracy.png").is_file()
  # Any accuracy reaches 0.0 at the first evaluation: the run times it from launch.
  target = summary["time_to_target"]
  assert target["metric"] == "test/accuracy" and target["epoch"] == 1
  assert 0 < target["seconds_from_launch"] < summary["wall_seconds"] + 30


@pytest.mark.parametrize("target,expected_metrics", [
    ("train-fnn", {"loss", "accuracy", "auc"}),
    ("train-rnn", {"loss", "rmse"}),
    ("train-lstm", {"loss", "rmse"}),
    ("train-gru", {"loss", "rmse"}),
])
def test_make_train_targets_run_end_to_end(tmp_path, target, expected_metrics):
  workdir = tmp_path / target
  result = _make(target, workdir, "--config.num_epochs=2 --config.log_every_epochs=1")
  assert result.returncode == 0, result.stderr
  summary = json.loads((workdir / "summary.json").read_text())
  assert expected_metrics <= set(summary["final"]["test"])
  if "rmse" in expected_metrics:
    assert summary["reference"]["test"]["naive_rmse"] > 0
    assert "reference: naive_rmse" in result.stdout
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [(r["epoch"], r["split"]) for r in rows] == [(1, "train"), (1, "test"), (2, "train"), (2, "test")]
