"""Bad input gets one clear line and exit code 2, before anything is written or computed."""

import errno
import json
import subprocess
import sys

import pytest
from conftest import ROOT

from nn_jax import cli
from nn_jax.workdir.checkpoint import Checkpoints

HOUSE = str(ROOT / "experiments" / "house_mlp.py")


@pytest.mark.parametrize("args,message", [
    (["--config.model.depth=3"], "unknown config key 'model.depth'"),
    (["--config.num_epochs=ten"], "flag --config.num_epochs=ten: invalid literal for int()"),
    (["--config.num_epochs=0"], "num_epochs must be positive"),
    (["--config.optimizer.learning_rate=-0.1"], "learning_rate must be positive"),
    (["--config.optimizer.name=adamm"], "optimizer.name 'adamm' is not an optax optimizer; did you mean adam"),
    (["--config.optimizer.kwargs.b3=0.9"], "optax.sgd takes no b3"),
    (["--config.schedule.name=cosine"], "'cosine' is not an optax schedule; did you mean cosine_decay_schedule"),
    (["--config.data_on_device=maybe"], "data_on_device must be 'auto', 'true' or 'false'"),
    (["--config.steps_per_dispatch=-2"], "steps_per_dispatch must be >= 0"),
    (["--config.model=3"], "is a group"),
    (["--config.model.activation=swish"], "config.model.activation 'swish' is not one of"),
    (["--config.seed"], "Missing value for flag --config.seed"),
    (["--config.microbatch_size=-1"], "microbatch_size must be >= 0"),
    (["--config.microbatch_size=7"], "microbatch_size 7 does not divide the batch of"),
    (["--config.num_epochs=99999999999999999999999"], "below 2**31"),
    (["--config.optimizer.kwargs.momentum=abc"], "config.optimizer.kwargs do not work with optax.sgd: TypeError"),
    (["--config.schedule.name=warmup_cosine_decay_schedule", "--config.schedule.kwargs.init_value=0.0",
      "--config.schedule.kwargs.peak_value=x", "--config.schedule.kwargs.warmup_steps=10"],
     "config.optimizer.kwargs or config.schedule.kwargs do not work"),
    (["--config.predict_examples=(('110', 7),)"], "must be a tuple of finite numbers"),
])
def test_bad_train_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", HOUSE, "--workdir", str(workdir), *args])
  err = capsys.readouterr().err
  assert code == 2
  assert message in err and err.count("\n") == 1
  assert not workdir.exists()


@pytest.mark.parametrize("config,override,message", [
    ("cnn_mnist.py", "--config.model.conv_impl=cudnn", "conv_impl 'cudnn' is not one of auto, xla, fused"),
    ("recurrent_series.py", "--config.model.cell=transformer", "config.model.cell 'transformer' is not one of"),
    ("recurrent_series.py:gru", "--config.model.recurrence=optimized", "'optimized' is for the LSTM only"),
    ("cnn_mnist.py", "--config.microbatch_size=30", "microbatch_size 30 does not divide config.batch_size 200"),
])
def test_bad_model_choice_is_refused_before_any_work(tmp_path, capsys, config, override, message):
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", str(ROOT / "experiments" / config), "--workdir", str(workdir), override]) == 2
  assert message in capsys.readouterr().err and not workdir.exists()


def test_unknown_config_variant_is_one_line(tmp_path, capsys):
  config = str(ROOT / "experiments" / "recurrent_series.py") + ":transformer"
  assert cli.main(["train", "--config", config, "--workdir", str(tmp_path / "r")]) == 2
  err = capsys.readouterr().err
  assert "variant 'transformer' is not one of simple, lstm, gru" in err and err.count("\n") == 1


def test_missing_workdir_is_one_line(capsys):
  assert cli.main(["train", "--config", HOUSE]) == 2
  err = capsys.readouterr().err
  assert "--workdir" in err and err.count("\n") == 1


def test_missing_config_file_is_one_line(tmp_path, capsys):
  assert cli.main(["train", "--config", "experiments/nope.py", "--workdir", str(tmp_path / "r")]) == 2
  assert "does not exist" in capsys.readouterr().err


def test_workdir_that_is_a_file_is_refused(tmp_path, capsys):
  path = tmp_path / "file"
  path.write_text("x")
  assert cli.main(["train", "--config", HOUSE, "--workdir", str(path)]) == 2
  assert "is a file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def house_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("house")
  assert cli.main(["train", "--config", HOUSE, "--workdir", str(workdir), "--config.num_epochs=10",
                   "--config.progress=False"]) == 0
  return workdir


@pytest.mark.parametrize("text", ["110", "110,seven", "1,2,3", ""])
def test_predict_rejects_malformed_input(house_run, capsys, text):
  capsys.readouterr()
  assert cli.main(["predict", "--workdir", str(house_run), "--input", text]) == 2
  err = capsys.readouterr().err
  assert "must be 2 comma-separated numbers" in err and err.count("\n") == 1


def test_a_full_disk_while_saving_is_one_line_and_the_status_says_failed(tmp_path, capsys, monkeypatch):
  saves = []

  def save(self, state, progress, metrics=None):
    saves.append(int(state.step))
    if len(saves) == 2:  # the disk fills up after the first checkpoint
      raise RuntimeError("orbax's writer failed") from OSError(errno.ENOSPC, "No space left on device",
                                                              str(self.directory / "2"))
    save_for_real(self, state, progress, metrics)

  save_for_real = Checkpoints.save
  monkeypatch.setattr(Checkpoints, "save", save)
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", HOUSE, "--workdir", str(workdir), "--config.num_epochs=20",
                   "--config.checkpoint_every_epochs=5", "--config.progress=False"]) == 1
  err = capsys.readouterr().err
  assert "no space left on the device writing" in err and "run the same command again" in err
  assert err.count("\n") == 1
  status = json.loads((workdir / "status.json").read_text())
  assert status["status"] == "failed" and "RuntimeError" in status["message"]
  assert not list(workdir.rglob("*.part"))


def test_predict_warns_of_inputs_that_are_not_finite(house_run, capsys):
  capsys.readouterr()
  assert cli.main(["predict", "--workdir", str(house_run), "--input", "nan,7", "--input", "110,1e400",
                   "--input", "110,7"]) == 0
  captured = capsys.readouterr()
  assert "inputs [nan, 7.0], [110.0, inf] are not finite numbers" in captured.err
  assert captured.out.count("Predicted price") == 3


def test_predict_prints_the_articles_line(house_run, capsys):
  capsys.readouterr()
  assert cli.main(["predict", "--workdir", str(house_run), "--input", "110,7", "--input", "85,12"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith("Predicted price for 110 m², 7 years: ") and lines[0].endswith(" t€")
  assert lines[1].startswith("Predicted price for 85 m², 12 years: ")


def test_adamw_with_a_warmup_cosine_schedule_from_the_command_line(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", HOUSE, "--workdir", str(workdir), "--config.num_epochs=20",
                   "--config.progress=False", "--config.optimizer.name=adamw",
                   "--config.optimizer.kwargs.weight_decay=0.01",
                   "--config.schedule.name=warmup_cosine_decay_schedule",
                   "--config.schedule.kwargs={'init_value': 0.0, 'peak_value': 1.0, 'warmup_steps': 5}"]) == 0
  config = __import__("json").loads((workdir / "config.json").read_text())
  assert config["optimizer"] == {"name": "adamw", "learning_rate": 0.01, "kwargs": {"weight_decay": 0.01}}
  assert config["schedule"]["name"] == "warmup_cosine_decay_schedule"


def test_predict_without_a_run_is_one_line(tmp_path, capsys):
  assert cli.main(["predict", "--workdir", str(tmp_path), "--input", "110,7"]) == 2
  assert "no config.json" in capsys.readouterr().err


def test_predict_with_a_garbled_config_is_one_line(tmp_path, capsys):
  (tmp_path / "config.json").write_text("{not json")
  assert cli.main(["predict", "--workdir", str(tmp_path), "--input", "110,7"]) == 2
  assert "is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("workdir,message", [
    ("", "is empty or not a path"),
    ("README.md/run", "which is a file"),
    ("/proc/nn_jax_run", "cannot be written to"),
])
def test_an_unusable_workdir_is_one_line(capsys, workdir, message):
  assert cli.main(["train", "--config", HOUSE, "--workdir", workdir]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1


HEAVY = ("jax", "flax", "optax", "tensorflow_datasets", "matplotlib", "orbax", "sklearn", "scipy")


@pytest.mark.parametrize("args", [
    ["train", "--help"],
    ["train", "--config", "experiments/house_mlp.py", "--workdir", "W", "--config.num_epoch=3"],  # a bad key
    ["train", "--config", "experiments/house_mlp.py", "--workdir", "W", "--config.num_epochs=many"],  # a bad value
    ["train", "--config", "experiments/house_mlp.py", "--workdir", "W", "--config.num_epochs=-1"],
])
def test_help_and_a_refused_config_import_no_jax_nor_any_heavy_library(tmp_path, args):
  code = ("import sys; from nn_jax import cli\n"
          "try:\n  cli.main(sys.argv[1:])\nexcept SystemExit:\n  pass\n"
          f"print('IMPORTED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
  args = [str(tmp_path / "w") if a == "W" else a for a in args]
  result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
  assert "IMPORTED []" in result.stdout, result.stdout + result.stderr
  assert not (tmp_path / "w").exists()
