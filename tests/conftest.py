"""Shared test helpers: paths, the shared MNIST copy, a config loader, and the CLI run in this process."""

import contextlib
import io
import os
import pathlib
import subprocess
import tempfile

import jax
import pytest

from nn_jax import config as config_lib

# The tests compare against float64 references (NumPy, finite differences): float32 matmuls and
# convolutions at full precision, also on GPUs, whose default for float32 is TF32.
jax.config.update("jax_default_matmul_precision", "highest")

if os.environ.get("PYTEST_XDIST_WORKER"):
  # Parallel test processes share one accelerator: each takes memory as it needs it, not 75% up front.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
# The prepared MNIST: beside the project, or carried in its git-ignored data/ folder (accelerator nodes).
SHARED_TFDS = next((d for d in (SHARED_DATA / "tfds", ROOT / "data" / "tfds")
                    if (d / "mnist" / "3.0.1" / "dataset_info.json").is_file()), SHARED_DATA / "tfds")
SHARED_GZ = SHARED_DATA / "mnist-gz"

needs_shared_tfds = pytest.mark.skipif(not (SHARED_TFDS / "mnist" / "3.0.1" / "dataset_info.json").is_file(),
                                       reason="no prepared MNIST copy in ../shared/data/tfds or data/tfds")
needs_shared_gz = pytest.mark.skipif(not (SHARED_GZ / "train-images-idx3-ubyte.gz").is_file(),
                                     reason="the official MNIST .gz files in ../shared/data/mnist-gz are absent")


def experiment(name: str, *overrides: str, **values):
  """Loads experiments/NAME[:variant].py with `--config.`-style `key=value` strings (parsed as the
  CLI parses them) and keyword values (dots written as __), validated."""
  path, _, variant = name.partition(":")
  spec = str(ROOT / "experiments" / f"{path}.py") + (f":{variant}" if variant else "")
  return config_lib.load(spec, {k.replace("__", "."): v for k, v in values.items()},
                         [f"--config.{o}" for o in overrides])


def assert_same_function(reference, other, inputs, targets, atol=1e-5, grad_rtol=1e-4):
  """`other` has `reference`'s parameter tree and initial values, outputs and gradients (a squared-error loss)."""
  import jax.numpy as jnp
  import numpy as np
  params = reference.init(jax.random.key(0), inputs)["params"]
  other_params = other.init(jax.random.key(0), inputs)["params"]
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(other_params)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(other_params)):
    np.testing.assert_array_equal(a, b)  # checkpoints are interchangeable
  np.testing.assert_allclose(other.apply({"params": params}, inputs), reference.apply({"params": params}, inputs),
                             atol=atol)
  loss = lambda model: lambda p: jnp.mean((model.apply({"params": p}, inputs) - targets) ** 2)
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(other))(params)),
                  jax.tree_util.tree_leaves(jax.grad(loss(reference))(params))):
    np.testing.assert_allclose(a, b, atol=atol, rtol=grad_rtol)


def pytest_configure(config):
  """One persistent compilation cache for the whole suite and the processes it starts, kept in
  .pytest_cache: a program compiled by one test (or an earlier session) is loaded by the next, and the
  user's own cache is never touched. A test that needs a cold cache sets its own folder."""
  cache = getattr(config, "cache", None)  # None under -p no:cacheprovider (make device-check): a folder of its own
  folder = cache.mkdir("nn_jax_compilation") if cache else tempfile.mkdtemp(prefix="nn_jax_compilation_")
  if "NN_JAX_COMPILATION_CACHE" not in os.environ:
    os.environ["NN_JAX_COMPILATION_CACHE"] = str(folder)


@pytest.fixture(autouse=True)
def own_decoded_cache(tmp_path_factory, monkeypatch):
  """Every test, and every process it starts, decodes into an empty cache folder of its own, never the user's."""
  monkeypatch.setenv("NN_JAX_CACHE", str(tmp_path_factory.mktemp("nn_jax_cache")))


@pytest.fixture
def mnist_cache(request, monkeypatch, tmp_path_factory):
  """For tests that want MNIST decoded once: the tests' own cache, kept between sessions in .pytest_cache.
  Entries are named by the records they hold, so tests on mock data cannot reach or spoil it."""
  cache = getattr(request.config, "cache", None)
  folder = cache.mkdir("nn_jax_decoded") if cache else tmp_path_factory.getbasetemp() / "nn_jax_decoded"
  folder.mkdir(exist_ok=True)
  monkeypatch.setenv("NN_JAX_CACHE", str(folder))
  return folder


@pytest.fixture
def quiet_progress(monkeypatch):
  monkeypatch.setenv("TQDM_DISABLE", "1")


def subprocess_env(**extra) -> dict:
  env = dict(os.environ)
  env.update(extra)
  return env


def run_cli(arguments) -> subprocess.CompletedProcess:
  """`python -m nn_jax ARGUMENTS` as the CLI's `main` in this process, which is what that command runs,
  without paying its start-up again: the exit code and what it printed. For runs that are not killed,
  signalled or given another device count (those need a process of their own)."""
  from nn_jax import cli
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main([str(argument) for argument in arguments])
  return subprocess.CompletedProcess(arguments, code, out.getvalue(), err.getvalue())
