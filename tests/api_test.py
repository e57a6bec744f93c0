"""The Python API for notebooks, and the example notebook, executed."""

import numpy as np
import pytest
from conftest import ROOT

import nn_jax
from nn_jax import api
from nn_jax.common.errors import UserError


def test_train_returns_the_summary_the_history_and_a_predict_function(tmp_path, quiet_progress):
  result = nn_jax.train(str(ROOT / "experiments" / "house_mlp.py"), tmp_path, num_epochs=200, progress=False)
  assert result.summary["epochs"] == 200 and len(result.history) == 200
  assert [row["epoch"] for row in result.history[:2]] == [1, 2]
  raw = result.predict_raw([[110.0, 7.0]])
  assert raw.shape == (1, 1) and raw[0, 0] == pytest.approx(result.summary["predictions"][0]["prediction"])
  assert result.predict(np.zeros((3, 2), np.float32)).shape == (3, 1)
  again = api.load(tmp_path)
  assert again.summary == result.summary and again.history == result.history
  for batch in (np.zeros((3, 3)), np.zeros((0, 2)), np.zeros(2), [["110", "seven"]]):
    with pytest.raises(UserError, match="predict takes a batch of"):
      result.predict(batch)
  (tmp_path / "summary.json").write_text('{"final": ')  # a run killed mid-copy, a disk that lost the end
  with pytest.raises(UserError, match="summary.json is damaged"):
    api.load(tmp_path)


def test_the_cli_s_errors_raise(tmp_path):
  with pytest.raises(UserError, match="unknown config key 'model.depth'"):
    nn_jax.train(str(ROOT / "experiments" / "house_mlp.py"), tmp_path, **{"model.depth": 3})
  with pytest.raises(UserError, match="num_epochs must be positive"):
    nn_jax.train(str(ROOT / "experiments" / "house_mlp.py"), tmp_path, num_epochs=0)
  assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("workdir,overrides,message", [
    (None, {}, "is empty or not a path"),
    ("README.md", {}, "is a file"),
    ("run", {"seed": True}, "True and False are not numbers"),
    ("run", {"progress": 1}, "True and False are not numbers"),
    ("run", {"optimizer.learning_rate": float("inf")}, "must be positive and finite"),
])
def test_bad_api_arguments_raise_before_anything_is_written(tmp_path, monkeypatch, workdir, overrides, message):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "README.md").write_text("a file")
  with pytest.raises(UserError, match=message):
    nn_jax.train(str(ROOT / "experiments" / "house_mlp.py"), workdir, **overrides)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path, mnist_cache):  # the real MNIST where a prepared copy is found
  import nbclient
  import nbformat
  notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(ROOT)}}).execute()
  outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
  assert not [output for output in outputs if output.output_type == "error"]
  assert any(output.output_type == "display_data" and "image/png" in output.data for output in outputs)
