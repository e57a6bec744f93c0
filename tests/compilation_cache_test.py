"""JAX's persistent compilation cache: where it lives, and that a program it serves trains the same numbers."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from nn_jax.training import compilation_cache


def test_the_folder_comes_from_the_config_then_the_environment_then_the_user_cache(monkeypatch, tmp_path):
  monkeypatch.delenv("NN_JAX_COMPILATION_CACHE", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compilation_cache.folder() == tmp_path / "xdg" / "nn_jax" / "jax_compilation_cache"
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert compilation_cache.folder() == tmp_path / "home" / ".cache" / "nn_jax" / "jax_compilation_cache"
  monkeypatch.setenv("NN_JAX_COMPILATION_CACHE", str(tmp_path / "env"))
  assert compilation_cache.folder() == tmp_path / "env"
  assert compilation_cache.folder(str(tmp_path / "config")) == tmp_path / "config"
  assert compilation_cache.folder("off") is None
  monkeypatch.setenv("NN_JAX_COMPILATION_CACHE", "off")
  assert compilation_cache.folder() is None


@pytest.mark.slow
def test_a_run_served_by_a_warm_cache_equals_a_cold_and_an_uncached_one(tmp_path):
  def train(name: str, cache: str) -> dict:
    command = [sys.executable, "-m", "nn_jax", "train", "--config", "experiments/fnn_binary.py", "--workdir",
               str(tmp_path / name), "--config.num_epochs=2", "--config.progress=False", "--config.pictures=False",
               f"--config.compilation_cache={cache}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / name / "summary.json").read_text())

  cache = str(tmp_path / "cache")
  cold, warm, uncached = train("cold", cache), train("warm", cache), train("uncached", "off")
  # A cold cache compiles (a program the run builds twice is served the second time); a warm one compiles nothing.
  assert cold["compilation"]["from_cache"] < cold["compilation"]["programs"] // 2
  assert warm["compilation"]["from_cache"] == warm["compilation"]["programs"] == cold["compilation"]["programs"]
  assert uncached["compilation"] == {"cache": None, "programs": cold["compilation"]["programs"], "from_cache": 0}
  assert cold["params_digest"] == warm["params_digest"] == uncached["params_digest"]
  assert cold["final"] == warm["final"] == uncached["final"]
