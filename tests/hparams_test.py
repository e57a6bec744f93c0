"""The keys every experiment has: their traits, declared beside their defaults, are what every reader reads."""

import pytest
from conftest import experiment

from nn_jax.ablations import report
from nn_jax.common.errors import UserError
from nn_jax.training import hparams, trainer
from nn_jax.workdir import records

Trait = hparams.Trait


def test_a_key_below_a_declared_key_has_its_traits():
  assert hparams.traits("stop.patience") == hparams.traits("stop") == Trait.RESUMABLE
  assert hparams.traits("seed") == Trait.RUN_AXIS | Trait.REPLICATE
  assert hparams.traits("optimizer.kwargs.b1") == Trait.RUN_AXIS
  assert hparams.traits("optimizer.name") == hparams.traits("model.units") == Trait.NONE


def test_resume_reports_and_programs_read_the_declared_traits(tmp_path, monkeypatch):
  config = experiment("house_mlp")
  records.write_config(tmp_path, config)
  changed = experiment("house_mlp", "eval_batch_size=7")
  runs = [{"config": records.flatten(records.config_to_dict(c))} for c in (config, changed)]
  with pytest.raises(UserError, match="eval_batch_size: 1000 -> 7"):
    trainer.check_resumable(changed, tmp_path)
  assert report.group(runs)[0] == ["eval_batch_size"]
  assert hparams.program_key(config) != hparams.program_key(changed)

  declared = dict(hparams.KEYS, eval_batch_size=(1000, Trait.RESUMABLE | Trait.REPLICATE | Trait.RUN_AXIS))
  monkeypatch.setattr(hparams, "KEYS", declared)
  trainer.check_resumable(changed, tmp_path)
  assert report.group(runs)[0] == []
  assert hparams.program_key(config) == hparams.program_key(changed)
  assert "eval_batch_size" in hparams.run_axis_keys()


def test_runs_differing_in_dropout_rates_are_one_program_but_a_rate_of_0_is_another():
  cnn = lambda *overrides: hparams.program_key(experiment("cnn_mnist", *overrides))
  assert cnn("model.dense_dropout=0.5", "seed=1") == cnn("model.dense_dropout=0.25")  # arrays in one program
  assert cnn("model.dense_dropout=0.5") != cnn()  # a rate of 0 removes the op: another program
  assert cnn("model.dense_dropout=0.5") != cnn("model.conv_dropout=0.5")
  house = lambda units: hparams.program_key(experiment("house_mlp", f"model.hidden_units=({units},)"))
  assert house(4) != house(8)  # a model field off the run axis


def test_runs_differing_in_schedule_floats_it_computes_with_as_arrays_are_one_program():
  key = lambda *overrides: hparams.program_key(experiment(
      "house_mlp", "schedule.name=warmup_cosine_decay_schedule", "schedule.kwargs.init_value=0.0",
      "schedule.kwargs.warmup_steps=10", *overrides))
  assert key("schedule.kwargs.end_value=0.1", "schedule.kwargs.peak_value=1.0") == key(
      "schedule.kwargs.end_value=0.2", "schedule.kwargs.peak_value=1.0")
  # warmup_cosine_decay_schedule branches on peak_value in Python: another value is another program.
  assert key("schedule.kwargs.peak_value=1.0") != key("schedule.kwargs.peak_value=0.5")
