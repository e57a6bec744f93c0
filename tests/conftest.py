"""Shared test helpers: paths, the shared MNIST copy, and a config loader."""

import os
import pathlib

import pytest

from nn_jax import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_TFDS = SHARED_DATA / "tfds"
SHARED_GZ = SHARED_DATA / "mnist-gz"

needs_shared_tfds = pytest.mark.skipif(not (SHARED_TFDS / "mnist" / "3.0.1" / "dataset_info.json").is_file(),
                                       reason="the prepared MNIST copy in ../shared/data/tfds is absent")
needs_shared_gz = pytest.mark.skipif(not (SHARED_GZ / "train-images-idx3-ubyte.gz").is_file(),
                                     reason="the official MNIST .gz files in ../shared/data/mnist-gz are absent")


def experiment(name: str, *overrides: str):
  """Loads experiments/NAME.py with `key=value` overrides, as the CLI does."""
  config = config_lib.load_config(str(ROOT / "experiments" / f"{name}.py"))
  for override in overrides:
    config_lib.apply_override(config, override)
  config_lib.validate(config)
  return config


@pytest.fixture
def quiet_progress(monkeypatch):
  monkeypatch.setenv("TQDM_DISABLE", "1")


def subprocess_env(**extra) -> dict:
  env = dict(os.environ)
  env.update(extra)
  return env
