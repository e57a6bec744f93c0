"""status.json: what a run is doing, and how many times it was killed or preempted."""

import json

from nn_jax.workdir.status import RunStatus


def test_a_run_found_running_was_killed(tmp_path):
  status = RunStatus(tmp_path)
  status.start(None)
  assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"
  again = RunStatus(tmp_path)  # the process died without a word; the next one starts
  again.start(None)
  assert again.fields["kills"] == 1
  again.update(status="done")
  last = RunStatus(tmp_path)
  last.start(None)
  assert last.fields["kills"] == 1  # a finished run that is started again was not killed


def test_a_garbled_status_is_rewritten_not_fatal_naming_the_last_checkpoint(tmp_path):
  (tmp_path / "status.json").write_text("{garbled")
  status = RunStatus(tmp_path)
  status.start(40)  # the latest checkpoint the run found
  rebuilt = json.loads((tmp_path / "status.json").read_text())
  assert rebuilt["status"] == "running" and rebuilt["last_checkpoint_step"] == 40


def test_only_the_primary_process_writes(tmp_path):
  RunStatus(tmp_path, enabled=False).start(None)
  assert not (tmp_path / "status.json").exists()


def test_a_binary_status_is_rewritten_not_fatal(tmp_path):
  (tmp_path / "status.json").write_bytes(bytes(range(256)))
  RunStatus(tmp_path).start(None)
  assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"
