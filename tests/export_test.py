"""Export: the trained model as a jax.export function, runnable without the model code, equal to the live model."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import ROOT, experiment

import nn_jax
from nn_jax import cli, data, export
from nn_jax.common.errors import UserError
from nn_jax.training import trainer

CASES = [("house_mlp", ()), ("fnn_binary", ()), ("recurrent_series:simple", ()), ("recurrent_series:lstm", ()),
         ("recurrent_series:gru", ()), ("cnn_mnist", ("dataset.train_examples=32", "dataset.test_examples=32",
                                                      "batch_size=16")),
         ("cnn_mnist:bn_dropout", ("dataset.train_examples=32", "dataset.test_examples=32", "batch_size=16"))]


@pytest.mark.parametrize("name,overrides", [case if case[0] == "house_mlp" else pytest.param(*case, marks=pytest.mark.slow)
                                            for case in CASES])
def test_the_exported_model_computes_what_the_live_one_does(tmp_path, quiet_progress, name, overrides):
  with tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE):
    config = experiment(name, "num_epochs=2", *overrides)
    trainer.train_and_evaluate(config, tmp_path)
    dataset = data.load(config.dataset)
  out = export.export_run(tmp_path)
  exported = nn_jax.load_exported(out)
  _, model, variables = trainer.restore_for_inference(tmp_path)
  inputs = dataset.splits["test" if "test" in dataset.splits else "train"][0][:7]  # an odd batch
  np.testing.assert_allclose(exported(inputs), np.asarray(model.apply(variables, inputs)), rtol=1e-6, atol=1e-6)
  assert exported.info["input_shape"][0] == "batch" and exported.info["platforms"]


def test_the_cli_exports_and_a_folder_without_an_export_is_one_line(tmp_path, capsys):
  assert cli.main(["train", "--config", "experiments/house_mlp.py", "--workdir", str(tmp_path),
                   "--config.num_epochs=10", "--config.progress=False"]) == 0
  assert cli.main(["export", "--workdir", str(tmp_path)]) == 0
  assert "Exported to" in capsys.readouterr().out
  with pytest.raises(UserError, match="holds no exported model"):
    nn_jax.load_exported(tmp_path)


def _truncate(path):
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path):
  data = bytearray(path.read_bytes())
  data[int(len(data) * 0.7)] ^= 0x01
  path.write_bytes(bytes(data))


def test_a_damaged_export_or_a_bad_batch_is_one_line(tmp_path):
  assert cli.main(["train", "--config", "experiments/house_mlp.py", "--workdir", str(tmp_path),
                   "--config.num_epochs=10", "--config.progress=False"]) == 0
  out = export.export_run(tmp_path)
  model = nn_jax.load_exported(out)
  for batch in (np.zeros((2, 3)), np.zeros((0, 2)), np.zeros(2)):
    with pytest.raises(UserError, match="the exported model takes a batch of shape"):
      model(batch)
  pristine = {name: (out / name).read_bytes() for name in export.FILES}
  for name, damage, message in [("model.jaxexport", _truncate, "model.jaxexport in .* differ from the checksum"),
                                ("variables.npz", _flip, "variables.npz in .* differ from the checksum"),
                                ("variables.npz", lambda p: p.write_bytes(b"garbage"), "differ from the checksum"),
                                ("model.json", _truncate, "model.json is damaged")]:
    damage(out / name)
    with pytest.raises(UserError, match=message):
      nn_jax.load_exported(out)
    (out / name).write_bytes(pristine[name])


def test_the_readme_s_standalone_loader_needs_only_jax_and_numpy(tmp_path):
  assert cli.main(["train", "--config", "experiments/house_mlp.py", "--workdir", str(tmp_path),
                   "--config.num_epochs=10", "--config.progress=False"]) == 0
  assert cli.main(["export", "--workdir", str(tmp_path)]) == 0
  namespace = {}
  exec(_readme_loader(), namespace)  # the README's lines, as a user pastes them
  outputs = namespace["run"](str(tmp_path / "export"), np.zeros((2, 2), np.float32))
  np.testing.assert_allclose(outputs, nn_jax.load_exported(tmp_path / "export")(np.zeros((2, 2))), rtol=1e-6)


def _readme_loader() -> str:
  readme = (ROOT / "README.md").read_text()
  start = readme.index("```python\n# Run an exported model")
  return readme[start + len("```python\n"):readme.index("```", start + 10)]
