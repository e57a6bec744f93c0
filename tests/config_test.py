"""Configs: one loader for files, command-line strings and Python values, all typed and validated."""

import pytest
from conftest import ROOT

from nn_jax import config as config_lib
from nn_jax.common.errors import UserError

HOUSE = str(ROOT / "experiments" / "house_mlp.py")


def test_command_line_overrides_are_typed_by_the_defaults():
  config = config_lib.load(HOUSE, arguments=["--config.optimizer.learning_rate=1", "--config.model.hidden_units=(8, 8)",
                                             "--config.progress=False"])
  assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)
  assert tuple(config.model.hidden_units) == (8, 8)
  assert config.progress is False


def test_values_override_without_strings_and_lists_become_tuples():
  config = config_lib.load(HOUSE, {"model.hidden_units": [2], "optimizer.learning_rate": 1, "num_epochs": 5})
  assert config.model.hidden_units == (2,) and config.optimizer.learning_rate == 1.0 and config.num_epochs == 5


def test_loading_never_changes_the_file_s_config_for_the_next_caller():
  config_lib.load(HOUSE, {"num_epochs": 5})
  assert config_lib.load(HOUSE).num_epochs == 2000


@pytest.mark.parametrize("values,message", [
    ({"num_epochs": 2.5}, "config.num_epochs=2.5: expected a value of type int (the default is 2000)"),
    ({"model.depth": 3}, "unknown config key 'model.depth': model has no 'depth'"),
    ({"optimzer.name": "adam"}, "did you mean 'optimizer'?"),
    ({"progress": 1}, "expected a value of type bool"),
])
def test_bad_values_are_one_line_user_errors(values, message):
  with pytest.raises(UserError) as error:
    config_lib.load(HOUSE, values)
  assert message in str(error.value) and "\n" not in str(error.value)


def test_optax_keyword_arguments_may_be_new_keys():
  config = config_lib.load(HOUSE, arguments=["--config.optimizer.name=adam", "--config.optimizer.kwargs.b1=0.8"])
  assert config.optimizer.kwargs.b1 == 0.8
  config = config_lib.load(HOUSE, {"optimizer.name": "sgd", "optimizer.kwargs.momentum": 0.9})
  assert config.optimizer.kwargs.momentum == 0.9


def test_every_experiment_and_variant_loads_and_validates():
  for spec in ("house_mlp.py", "fnn_binary.py", "cnn_mnist.py", "cnn_mnist.py:bn_dropout",
               "recurrent_series.py:simple", "recurrent_series.py:lstm", "recurrent_series.py:gru"):
    config = config_lib.load(str(ROOT / "experiments" / spec))
    assert config.name and config.model.name and config.dataset.name


@pytest.mark.parametrize("spec,values,message", [
    ("recurrent_series.py", {"model.units": 0}, "config.model.units must be positive"),
    ("recurrent_series.py", {"dataset.window": 0}, "config.dataset.window must be at least 1"),
    ("fnn_binary.py", {"dataset.test_fraction": 1.5}, "test_fraction must lie strictly between 0 and 1"),
    ("house_mlp.py", {"model.name": "cnn"}, "'cnn' reads images (height, width, channels), but this dataset's"),
    ("house_mlp.py", {"loss": "softmax_cross_entropy"}, "is for multiclass targets, but house_prices has regression"),
    ("cnn_mnist.py", {"checkpoint_best_metric": "test/auc"}, "'test/auc' is not a metric this run records"),
    ("cnn_mnist.py", {"target_metric": "validation/accuracy"}, "is not a metric this run records"),
    ("house_mlp.py", {"predict_examples": ((110.0, 7.0, 1.0),)}, "(110.0, 7.0, 1.0) must be 2 numbers"),
    ("cnn_mnist.py", {"model.dense_dropout": 1.0}, "dense_dropout must lie in [0, 1)"),
    ("cnn_mnist.py", {"model.num_classes": 2}, "the model gives 2 outputs but this dataset needs 10"),
    ("recurrent_series.py", {"checkpoint_best_mode": "max"},
     "config.checkpoint_best_mode: test/rmse is better low ('min', nn_jax/common/metrics.py), not 'max'"),
    ("cnn_mnist.py", {"stop.metric": "test/accuracy", "stop.mode": "min"}, "test/accuracy is better high"),
    ("cnn_mnist.py", {"stop.mode": "lower"}, "config.stop.mode must be 'auto', 'max' or 'min', got 'lower'"),
])
def test_what_a_config_can_get_wrong_is_refused_up_front(spec, values, message):
  with pytest.raises(UserError) as error:
    config_lib.load(str(ROOT / "experiments" / spec), values)
  assert message in str(error.value) and "\n" not in str(error.value)


def test_a_config_file_that_raises_is_one_line(tmp_path):
  broken = tmp_path / "broken.py"
  broken.write_text("import nothing_of_that_name\n")
  with pytest.raises(UserError, match="config file .*broken.py raised ModuleNotFoundError"):
    config_lib.load(str(broken))
  broken.write_text("def get_config():\n  return 1 / 0\n")
  with pytest.raises(UserError, match="get_config\\(\\) raised ZeroDivisionError"):
    config_lib.load(str(broken))


@pytest.mark.parametrize("text,message", [
    ("import sys\nsys.exit(3)\n", "raised SystemExit: 3"),  # the CLI would have exited 3, saying nothing
    ("def get_config():\n  import sys\n  sys.exit(3)\n", "get_config() raised SystemExit: 3"),
    ("def get_config():\n  return None\n", "returned NoneType, not an ml_collections.ConfigDict"),
    ("def get_config():\n  return {'seed': 0}\n", "returned dict, not an ml_collections.ConfigDict"),
])
def test_a_config_file_that_exits_or_returns_no_config_is_one_line(tmp_path, text, message):
  broken = tmp_path / "broken.py"
  broken.write_text(text)
  with pytest.raises(UserError) as error:
    config_lib.load(str(broken))
  assert message in str(error.value) and "\n" not in str(error.value)
