"""The trainer: exact resume, runs on one program's run axis, time to target, and the model contract end to end."""

import contextlib
import json
import time

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import experiment

from nn_jax import data
from nn_jax.common.errors import UserError
from nn_jax.training import program, trainer


def _params(workdir):
  return jax.tree_util.tree_leaves(trainer.restore_for_inference(workdir)[2])


def _assert_same(a, b):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_checkpoint_restores_identical_predictions(tmp_path, quiet_progress):
  config = experiment("house_mlp", "num_epochs=300")
  summary = trainer.train_and_evaluate(config, tmp_path)
  _, model, variables = trainer.restore_for_inference(tmp_path)
  dataset = data.load(config.dataset)
  inputs = dataset.encode_inputs(np.array([[110.0, 7.0], [85.0, 12.0]]))
  restored = dataset.decode_outputs(np.asarray(model.apply(variables, inputs))).ravel()
  np.testing.assert_array_equal(restored, [p["prediction"] for p in summary["predictions"]])


@pytest.mark.slow
def test_a_longer_run_resumes_where_the_shorter_stopped(tmp_path, quiet_progress):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  trainer.train_and_evaluate(experiment("house_mlp", "num_epochs=400"), straight)
  trainer.train_and_evaluate(experiment("house_mlp", "num_epochs=200"), resumed)
  trainer.train_and_evaluate(experiment("house_mlp", "num_epochs=400"), resumed)
  _assert_same(_params(straight), _params(resumed))
  assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()


MOCK = ("dataset.train_examples=64", "dataset.test_examples=32", "batch_size=16", "eval_batch_size=10")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cnn_mnist", "cnn_mnist:bn_dropout"])
def test_mini_batch_resume_is_exact(tmp_path, quiet_progress, variant):
  # bn_dropout: BatchNorm statistics and dropout keys must resume exactly too.
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    trainer.train_and_evaluate(experiment(variant, "num_epochs=2", *MOCK), straight)
    trainer.train_and_evaluate(experiment(variant, "num_epochs=1", *MOCK), resumed)
    trainer.train_and_evaluate(experiment(variant, "num_epochs=2", *MOCK), resumed)
  _assert_same(trainer.restore_for_inference(straight)[2], trainer.restore_for_inference(resumed)[2])
  assert [(r["epoch"], r["split"]) for r in _rows(resumed)] == [(1, "train"), (1, "test"), (2, "train"), (2, "test")]
  assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_bn_dropout_trains_predicts_and_evaluates_in_inference_mode(tmp_path, quiet_progress):
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    config = experiment("cnn_mnist:bn_dropout", "num_epochs=2", *MOCK)
    summary = trainer.train_and_evaluate(config, tmp_path)
    dataset = data.load(config.dataset)
  assert summary["resolved"]["model.conv_impl"] == "xla"  # BatchNorm sits inside the conv + pool block
  _, model, variables = trainer.restore_for_inference(tmp_path)
  assert set(variables) == {"params", "batch_stats"}
  assert not np.allclose(variables["batch_stats"]["batch_norm_0"]["mean"], 0)  # training moved them
  inputs, labels = dataset.splits["test"]
  logits = np.asarray(model.apply(variables, inputs))  # inference mode: no dropout, running averages
  np.testing.assert_array_equal(logits, np.asarray(model.apply(variables, inputs)))
  accuracy = float(np.mean(logits.argmax(-1) == labels))
  assert summary["final"]["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)


SEEDS = (0, 1, 2)
# Runs of one program may differ in the seed, the learning rate and float optimizer arguments.
SEEDS_AXIS = ("seed=0", "seed=1", "seed=2")
HYPERPARAMETERS_AXIS = ("seed=0", "seed=0 optimizer.learning_rate=0.003",  # {kwarg}: a float of the optimizer
                        "seed=1 optimizer.kwargs.{kwarg}=0.8 optimizer.learning_rate=0.02")
SCHEDULE = ("schedule.name=cosine_decay_schedule", "schedule.kwargs.init_value=1.0", "schedule.kwargs.alpha=0.0")
SCHEDULE_AXIS = ("seed=0", "seed=0 schedule.kwargs.alpha=0.5",  # and the schedule's floats it traces
                 "seed=1 schedule.kwargs.init_value=0.5 schedule.kwargs.alpha=0.2")
DROPOUT_AXIS = ("model.conv_dropout=0.25 model.dense_dropout=0.5",  # and the model's run_axis_fields
                "model.conv_dropout=0.1 model.dense_dropout=0.3", "seed=1 model.conv_dropout=0.6 model.dense_dropout=0.2")


@pytest.mark.slow
@pytest.mark.parametrize("name,overrides,runs", [
    ("house_mlp", ("num_epochs=300", "checkpoint_every_epochs=300"), SEEDS_AXIS),  # full batch: one scan
    ("house_mlp", ("num_epochs=300", "checkpoint_every_epochs=300", "optimizer.kwargs.momentum=0.5"),
     HYPERPARAMETERS_AXIS),
    ("recurrent_series", ("dataset.name=noisy_sine", "num_epochs=3", "model.units=8", "log_every_epochs=1",
                          "target_metric=test/rmse", "target_value=1e9"), SEEDS_AXIS),
    ("recurrent_series", ("dataset.name=noisy_sine", "num_epochs=3", "model.units=8", "log_every_epochs=1",
                          "optimizer.kwargs.b1=0.9"), HYPERPARAMETERS_AXIS),
    ("house_mlp", ("num_epochs=300", "checkpoint_every_epochs=300", *SCHEDULE), SCHEDULE_AXIS),
    ("cnn_mnist", ("num_epochs=2", *MOCK), DROPOUT_AXIS),
])
def test_runs_trained_as_one_program_equal_runs_trained_alone(tmp_path, quiet_progress, name, overrides, runs):
  kwarg = next((o.split("=")[0].split(".")[-1] for o in overrides if o.startswith("optimizer.kwargs.")), "")
  configs = [experiment(name, *overrides, *run.format(kwarg=kwarg).split()) for run in runs]
  mock = tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE)
  with mock if name == "cnn_mnist" else contextlib.nullcontext():
    summaries = trainer.train(configs, [tmp_path / "vmapped" / str(i) for i in range(len(runs))])
    assert [s["runs_in_program"] for s in summaries] == [3, 3, 3]
    for i, config in enumerate(configs):
      trainer.train_and_evaluate(config, tmp_path / "alone" / str(i))
  for i in range(len(runs)):
    alone, vmapped = tmp_path / "alone" / str(i), tmp_path / "vmapped" / str(i)
    for a, b in zip(_params(alone), _params(vmapped)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    rows_a, rows_b = _rows(alone), _rows(vmapped)
    assert [(r["epoch"], r["split"]) for r in rows_a] == [(r["epoch"], r["split"]) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
      np.testing.assert_allclose(ra["loss"], rb["loss"], rtol=2e-4, atol=1e-6)
    assert json.loads((vmapped / "status.json").read_text())["status"] == "done"
  # The runs really differ: the program did not train one run three times.
  assert not np.allclose(_params(tmp_path / "vmapped" / "0")[0], _params(tmp_path / "vmapped" / "1")[0])
  assert not np.allclose(_params(tmp_path / "vmapped" / "1")[0], _params(tmp_path / "vmapped" / "2")[0])


@pytest.mark.slow
def test_vectorized_seeds_record_their_own_time_to_target(tmp_path, quiet_progress):
  # rmse <= 1e9 always holds: every seed "reaches" it at its first evaluation.
  configs = [experiment("recurrent_series", "dataset.name=noisy_sine", "num_epochs=2", "model.units=8", "log_every_epochs=1",
                        "target_metric=test/rmse", "target_value=1e9", f"seed={s}") for s in SEEDS]
  for summary in trainer.train(configs, [tmp_path / str(s) for s in SEEDS]):
    target = summary["time_to_target"]
    assert target["epoch"] == 1 and 0 < target["seconds_from_launch"] <= summary["wall_seconds"]


@pytest.mark.slow
def test_time_to_target_counts_from_each_runs_own_launch(tmp_path, quiet_progress):
  # Two runs in one process (as in a sweep): the second's time is its own, not the process's age.
  config = experiment("recurrent_series", "dataset.name=noisy_sine", "num_epochs=1", "model.units=8",
                      "target_metric=test/rmse", "target_value=1e9")
  trainer.train_and_evaluate(config, tmp_path / "first")
  time.sleep(3)
  second = trainer.train_and_evaluate(config, tmp_path / "second")
  assert second["time_to_target"]["seconds_from_launch"] <= second["wall_seconds"]


@pytest.mark.parametrize("other", ["model.hidden_units=(8,)", "optimizer.kwargs.nesterov=True"])
def test_runs_of_one_program_differ_only_in_run_axis_keys(tmp_path, other):
  configs = [experiment("house_mlp", "optimizer.name=sgd", "seed=0"),
             experiment("house_mlp", "optimizer.name=sgd", "seed=1", "optimizer.learning_rate=0.1", other)]
  with pytest.raises(trainer.CannotVectorize, match="differ in more than seed, optimizer.learning_rate"):
    trainer.train(configs, [tmp_path / "0", tmp_path / "1"])
  assert not (tmp_path / "0").exists()


def test_given_initial_params_must_match_the_model():
  config = experiment("house_mlp")
  model = trainer.models.build(config.model)
  with pytest.raises(UserError, match="do not match MLP"):
    program.initial_state(config, model, (2,), params={"hidden_0": {"kernel": np.zeros((3, 4))}})


def test_initial_state_is_the_seeds_init_compiled_once_per_model():
  config = experiment("recurrent_series:gru", "model.units=3")
  model = trainer.models.build(config.model)
  key = program.seed_keys(config.seed)["init"]
  eager = model.init(jax.random.wrap_key_data(key), np.zeros((1, 10, 1), np.float32))["params"]
  _assert_same(program.initial_state(config, model, (10, 1)).params, eager)  # bit for bit: the same checkpoints
  misses = program._init_function.cache_info().misses
  again = trainer.models.build(experiment("recurrent_series:gru", "model.units=3", "seed=1").model)
  program.initial_state(config, again, (10, 1))
  assert program._init_function.cache_info().misses == misses  # an equal model reuses the compiled init
  # A config file may give a list (hidden_units = [4, 4]), and config.json read back holds lists.
  listed = ml_collections.ConfigDict({"name": "mlp", "hidden_units": [4, 4], "output_units": 1})
  assert program.initial_state(experiment("house_mlp"), trainer.models.build(listed), (2,)).params["hidden_1"]


def test_microbatch_count():
  assert program.microbatch_count(200, 50) == 4
  assert program.microbatch_count(200, 0) == 1 and program.microbatch_count(200, 200) == 1
  with pytest.raises(UserError, match="microbatch_size 30 does not divide the batch of 200"):
    program.microbatch_count(200, 30)


@pytest.mark.slow
def test_the_profiler_traces_the_asked_steps_and_the_summary_splits_the_training_time(tmp_path, quiet_progress):
  summary = trainer.train_and_evaluate(experiment("fnn_binary", "num_epochs=3", "profile_steps=14:5"), tmp_path)
  traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
  assert len(traces) == 1 and traces[0].stat().st_size > 1000
  split = summary["train_split"]
  assert set(split) == {"host_input", "dispatch", "device_wait"} and all(v >= 0 for v in split.values())
  assert sum(split.values()) <= summary["train_seconds"] * 1.5 + 0.05
  assert set(summary["phases"]) == {"before_setup", "data", "compile", "train", "evaluate", "checkpoint", "other"}


def test_profile_steps_must_be_start_and_count():
  with pytest.raises(UserError, match="must be START:COUNT with COUNT > 0"):
    experiment("fnn_binary", "profile_steps=5")
