"""The run directory's records: config.json, metrics.jsonl, TensorBoard events, summary.json.

Every whole-file write is atomic (a temporary file, fsynced, then renamed), so
a kill leaves the old file or the new one, never half of one. metrics.jsonl
grows by appended lines; a torn last line (a kill mid-append) is dropped with a
warning when the file is read.
"""

import json
import os
import pathlib
import shutil
import sys
import time

import ml_collections
from flax import traverse_util
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

from nn_jax.common.errors import UserError


def write_text_atomically(path: pathlib.Path, text: str) -> None:
  """A reader (or a run killed mid-write) never sees half a file: written aside, synced, then renamed."""
  partial = path.with_suffix(path.suffix + ".part")
  try:
    with open(partial, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    partial.replace(path)
  except OSError:  # a full disk: the old file stays whole, and no stray part is left beside it
    partial.unlink(missing_ok=True)
    raise


def write_json(path: pathlib.Path, obj) -> None:
  write_text_atomically(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as JSON would hold it (tuples become lists)."""
  return json.loads(config.to_json())


def flatten(tree: dict) -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}"""
  return traverse_util.flatten_dict(tree, sep=".")


def write_config(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  write_json(workdir / "config.json", config_to_dict(config))


def read_metrics(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl's rows; a torn or garbled last line (a kill mid-append) is dropped with a warning."""
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
  rows = []
  for number, line in enumerate(lines, 1):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      if number < len(lines):
        raise UserError(f"{path} line {number} is not JSON, and later lines follow it: the file was edited or "
                        f"damaged; restore it or remove the run directory") from None
      print(f"Warning: dropped the torn last line of {path} (a write the run did not finish).", file=sys.stderr)
  return rows


class MetricsLog:
  """Appends one JSON object per (epoch, split) to metrics.jsonl and mirrors it to TensorBoard, a chunk
  of rows at a time: one append and one TensorBoard event per row, written in this thread (TensorBoard's
  own writer queues each scalar to a thread, a cost that a long run of short epochs pays in seconds)."""

  def __init__(self, workdir: pathlib.Path, resume_after_epoch: int = 0, enabled: bool = True):
    self.path = workdir / "metrics.jsonl"
    self.enabled = enabled  # False on all but the primary process of a multi-host run
    if not enabled:
      return
    # A resumed run drops rows past its checkpoint, so the log reads as one run; TensorBoard's
    # events are rewritten from the kept rows, or it would show the dropped epochs twice.
    kept = [row for row in read_metrics(workdir) if row["epoch"] <= resume_after_epoch]
    write_text_atomically(self.path, "".join(json.dumps(row) + "\n" for row in kept))
    shutil.rmtree(workdir / "tensorboard", ignore_errors=True)
    (workdir / "tensorboard").mkdir(parents=True)
    self.tensorboard = EventsWriter(str(workdir / "tensorboard" / "events"))
    self._mirror(kept)

  def _mirror(self, rows: list[dict]) -> None:
    for row in rows:
      values = [Summary.Value(tag=f"{row['split']}/{name}", simple_value=value) for name, value in row.items()
                if name not in ("epoch", "split")]
      self.tensorboard.write_event(Event(wall_time=time.time(), step=row["epoch"], summary=Summary(value=values)))
    self.tensorboard.flush()

  def write_rows(self, rows: list[tuple[int, str, dict]]) -> None:
    """Appends (epoch, split, metrics) rows."""
    if not self.enabled or not rows:
      return
    rows = [{"epoch": epoch, "split": split, **{k: float(v) for k, v in metrics.items()}}
            for epoch, split, metrics in rows]
    with open(self.path, "a") as f:
      f.write("".join(json.dumps(row) + "\n" for row in rows))
    self._mirror(rows)

  def write(self, epoch: int, split: str, metrics: dict) -> None:
    self.write_rows([(epoch, split, metrics)])

  def close(self) -> None:
    if self.enabled:
      self.tensorboard.close()


def read_config(workdir: pathlib.Path) -> dict:
  path = workdir / "config.json"
  if not path.is_file():
    raise UserError(f"{workdir} has no config.json, so it is no run directory; train into it first "
                    f"(python -m nn_jax train --config ... --workdir {workdir})")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); restore it from the config file") from None
  except UnicodeDecodeError:
    raise UserError(f"{path} is not text (binary data); restore it from the config file") from None


def read_summary(workdir: pathlib.Path) -> dict | None:
  """summary.json, or None when the run has not finished; UserError when it is not a JSON object."""
  path = workdir / "summary.json"
  if not path.is_file():
    return None
  try:
    summary = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    summary = None
  if not isinstance(summary, dict):
    raise UserError(f"{path} is damaged (not a JSON object); train the run again with the same --workdir to "
                    f"rewrite it, or remove the run")
  return summary
