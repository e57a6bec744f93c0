"""Configs: one loader for files, command-line strings and Python values, all typed and validated."""

import pytest

from conftest import ROOT
from nn_jax import config as config_lib
from nn_jax.errors import UserError

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
