"""Bad input gets one clear line and exit code 2, before anything is written or computed."""

import pytest

from conftest import ROOT
from nn_jax import cli

HOUSE = str(ROOT / "experiments" / "house_mlp.py")


@pytest.mark.parametrize("args,message", [
    (["--config.model.depth=3"], "unknown config key 'model.depth'"),
    (["--config.num_epochs=ten"], "expected a value of type int"),
    (["--config.num_epochs=0"], "num_epochs must be positive"),
    (["--config.optimizer.learning_rate=-0.1"], "learning_rate must be positive"),
    (["--config.optimizer.name=rmsprop"], "optimizer.name 'rmsprop' is not one of"),
    (["--config.model=3"], "is a group"),
    (["--config.model.activation=swish"], "config.model.activation 'swish' is not one of"),
    (["--config.seed"], "malformed override"),
    (["--config.microbatch_size=-1"], "microbatch_size must be >= 0"),
    (["--config.microbatch_size=7"], "microbatch_size 7 does not divide the batch of"),
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
    ("recurrent_series.py:gru", "--config.model.recurrence=fused", "'fused' is for the LSTM only"),
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


def test_overrides_are_typed():
  from nn_jax import config as config_lib
  config = config_lib.load_config(HOUSE)
  config_lib.apply_override(config, "optimizer.learning_rate=1")  # an int for a float is fine
  config_lib.apply_override(config, "model.hidden_units=(8, 8)")
  config_lib.apply_override(config, "progress=False")
  assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)
  assert tuple(config.model.hidden_units) == (8, 8)
  assert config.progress is False


@pytest.mark.parametrize("text", ["110", "110,seven", "1,2,3", ""])
def test_predict_rejects_malformed_input(tmp_path, capsys, text):
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", HOUSE, "--workdir", str(workdir), "--config.num_epochs=10",
                   "--config.progress=False"]) == 0
  capsys.readouterr()
  assert cli.main(["predict", "--workdir", str(workdir), "--input", text]) == 2
  err = capsys.readouterr().err
  assert "must be 2 comma-separated numbers" in err and err.count("\n") == 1


def test_predict_without_a_run_is_one_line(tmp_path, capsys):
  assert cli.main(["predict", "--workdir", str(tmp_path), "--input", "110,7"]) == 2
  assert "no config.json" in capsys.readouterr().err


def test_predict_with_a_garbled_config_is_one_line(tmp_path, capsys):
  (tmp_path / "config.json").write_text("{not json")
  assert cli.main(["predict", "--workdir", str(tmp_path), "--input", "110,7"]) == 2
  assert "is not valid JSON" in capsys.readouterr().err
