"""A model and a dataset in the researcher's own file, named `path/to/file.py:Name`: trained, resumed,
predicted and exported through the library as it ships."""

import json

import numpy as np
import pytest

import nn_jax
from nn_jax import api, cli, data, models
from nn_jax import config as config_lib
from nn_jax.common.errors import UserError

RESEARCH_FILE = '''
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from nn_jax.data import Spec
from nn_jax.data.dataset import Dataset


class TwoLayer(nn.Module):
  units: int = 8
  dtype: jnp.dtype = jnp.float32
  rng_streams: ClassVar[tuple[str, ...]] = ()
  input_rank: ClassVar[int] = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.tanh(nn.Dense(self.units, dtype=self.dtype)(x))
    return nn.Dense(1, dtype=self.dtype)(x).astype(jnp.float32)


def load_linear(num_points=64):
  inputs = np.random.default_rng(0).normal(size=(num_points, 3)).astype(np.float32)
  targets = inputs @ np.array([[1.0], [-2.0], [0.5]], np.float32)
  cut = num_points * 3 // 4
  return Dataset(name="linear", splits={"train": (inputs[:cut], targets[:cut]), "test": (inputs[cut:], targets[cut:])},
                 input_names=("a", "b", "c"), target_name="y")


LINEAR = Spec(load=load_linear, kind="regression", input_shape=lambda fields: (3,), outputs=1)
NOT_A_MODEL = 3
'''

CONFIG_FILE = '''
from nn_jax.config import base_config


def get_config():
  config = base_config()
  config.model.update({{"name": "{research}:TwoLayer", "units": 8}})
  config.dataset.update({{"name": "{research}:LINEAR", "num_points": 64}})
  config.loss = "mse"
  config.optimizer.learning_rate = 0.05
  config.num_epochs = 12
  config.batch_size = 16
  config.progress = False
  config.pictures = False
  return config
'''


@pytest.fixture
def research(tmp_path):
  """The researcher's model and dataset file and an experiment config naming them, outside the package."""
  research = tmp_path / "my_research.py"
  research.write_text(RESEARCH_FILE)
  config = tmp_path / "my_experiment.py"
  config.write_text(CONFIG_FILE.format(research=research))
  return research, str(config)


def test_a_model_and_dataset_of_ones_own_train_resume_predict_and_export(research, tmp_path, capsys):
  research_file, config = research
  whole, resumed = tmp_path / "whole", tmp_path / "resumed"
  assert cli.main(["train", "--config", config, "--workdir", str(whole)]) == 0
  assert cli.main(["train", "--config", config, "--workdir", str(resumed), "--config.num_epochs=5"]) == 0
  assert cli.main(["train", "--config", config, "--workdir", str(resumed)]) == 0  # resumes at epoch 5
  summaries = [json.loads((w / "summary.json").read_text()) for w in (whole, resumed)]
  assert summaries[0]["params_digest"] == summaries[1]["params_digest"]
  assert summaries[0]["final"]["test"]["rmse"] < 1.0  # it learned the linear map (the targets' std: about 2.3)

  capsys.readouterr()
  assert cli.main(["predict", "--workdir", str(whole), "--input", "1,0,0"]) == 0
  assert "y" in capsys.readouterr().out
  assert cli.main(["export", "--workdir", str(whole)]) == 0
  batch = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
  np.testing.assert_allclose(nn_jax.load_exported(whole / "export")(batch), api.load(whole).predict(batch),
                             rtol=1e-6, atol=1e-6)
  assert "TwoLayer" not in str(models.MODELS) and "LINEAR" not in str(data.DATASETS)


@pytest.mark.parametrize("key,value,message", [
    ("model.name", "{dir}/missing.py:TwoLayer", "config.model.name's file '{dir}/missing.py' does not exist"),
    ("model.name", "{research}:Nope", "defines no 'Nope'"),
    ("model.name", "{research}:NOT_A_MODEL", "is a int, not a linen Module class"),
    ("model.name", "{research}", "is not one of cnn, mlp, sequence_regressor, nor a path/to/file.py:Name"),
    ("dataset.name", "{research}:TwoLayer", "is a type, not an nn_jax.data.Spec"),
    ("model.units", 0, "config.model.units must be positive"),
])
def test_a_wrong_reference_is_one_line_before_anything_runs(research, tmp_path, key, value, message):
  research_file, config = research
  fill = lambda text: text.format(dir=tmp_path, research=research_file) if isinstance(text, str) else text
  with pytest.raises(UserError) as error:
    config_lib.load(config, {key: fill(value)})
  assert fill(message) in str(error.value) and "\n" not in str(error.value)
