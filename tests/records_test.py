"""The run directory's records: config.json, metrics.jsonl mirrored to TensorBoard, summary.json."""

import json

import ml_collections
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nn_jax.common.errors import UserError
from nn_jax.workdir import records


def _tensorboard_steps(workdir, tag):
  # Every event on disk: TensorBoard's own purge of "orphaned" steps would hide a duplicated epoch.
  events = EventAccumulator(str(workdir / "tensorboard"), purge_orphaned_data=False)
  events.Reload()
  return [(e.step, e.value) for e in events.Scalars(tag)]


def test_metrics_log_writes_json_lines_and_tensorboard(tmp_path):
  log = records.MetricsLog(tmp_path)
  for epoch in (1, 2, 3):
    log.write(epoch, "train", {"loss": 1.0 / epoch})
  log.close()
  assert [row["epoch"] for row in records.read_metrics(tmp_path)] == [1, 2, 3]
  assert [step for step, _ in _tensorboard_steps(tmp_path, "train/loss")] == [1, 2, 3]


def test_a_resumed_log_drops_later_rows_from_both_the_jsonl_and_tensorboard(tmp_path):
  log = records.MetricsLog(tmp_path)
  for epoch in (1, 2, 3, 4):
    log.write(epoch, "train", {"loss": float(epoch)})
  log.close()
  resumed = records.MetricsLog(tmp_path, resume_after_epoch=2)  # the checkpoint was at epoch 2
  for epoch in (3, 4):
    resumed.write(epoch, "train", {"loss": 10.0 * epoch})
  resumed.close()
  assert [(r["epoch"], r["loss"]) for r in records.read_metrics(tmp_path)] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
  # TensorBoard shows each epoch once, with the resumed run's values.
  assert _tensorboard_steps(tmp_path, "train/loss") == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_config_round_trips_and_flattens(tmp_path):
  config = ml_collections.ConfigDict({"a": 1, "b": {"c": (1, 2)}})
  records.write_config(tmp_path, config)
  assert records.read_config(tmp_path) == {"a": 1, "b": {"c": [1, 2]}}
  assert records.flatten(records.read_config(tmp_path)) == {"a": 1, "b.c": [1, 2]}


def test_json_is_written_whole_or_not_at_all(tmp_path):
  records.write_json(tmp_path / "x.json", {"k": 1})
  assert json.loads((tmp_path / "x.json").read_text()) == {"k": 1}
  assert not list(tmp_path.glob("*.part"))


def test_a_missing_or_garbled_config_is_one_line(tmp_path):
  with pytest.raises(UserError, match="no config.json"):
    records.read_config(tmp_path)
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(UserError, match="is not valid JSON"):
    records.read_config(tmp_path)


def test_a_torn_last_line_is_dropped_with_a_warning_not_fatal(tmp_path, capsys):
  (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "split": "train", "loss": 1.0}\n{"epoch": 2, "spl')
  assert records.read_metrics(tmp_path) == [{"epoch": 1, "split": "train", "loss": 1.0}]
  assert "dropped the torn last line" in capsys.readouterr().err
  log = records.MetricsLog(tmp_path, resume_after_epoch=1)  # a resumed run rewrites the file whole
  log.close()
  assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1, "split": "train", "loss": 1.0}\n'


def test_a_garbled_line_before_others_is_a_clear_error(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\nGARBAGE\n{"epoch": 2}\n')
  with pytest.raises(UserError, match="line 2 is not JSON"):
    records.read_metrics(tmp_path)


def test_a_binary_config_is_one_line(tmp_path):
  (tmp_path / "config.json").write_bytes(bytes(range(256)))
  with pytest.raises(UserError, match="is not text"):
    records.read_config(tmp_path)
