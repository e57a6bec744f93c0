"""status.json: what a run is doing, and how many times it was killed or preempted."""

import json

from nn_jax.status import RunStatus


def test_a_run_found_running_was_killed(tmp_path):
  status = RunStatus(tmp_path)
  status.start()
  assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"
  again = RunStatus(tmp_path)  # the process died without a word; the next one starts
  again.start()
  assert again.fields["kills"] == 1
  again.update(status="done")
  last = RunStatus(tmp_path)
  last.start()
  assert last.fields["kills"] == 1  # a finished run that is started again was not killed


def test_a_garbled_status_is_rewritten_not_fatal(tmp_path):
  (tmp_path / "status.json").write_text("{garbled")
  status = RunStatus(tmp_path)
  status.start()
  assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"


def test_only_the_primary_process_writes(tmp_path):
  RunStatus(tmp_path, enabled=False).start()
  assert not (tmp_path / "status.json").exists()


def test_a_binary_status_is_rewritten_not_fatal(tmp_path):
  (tmp_path / "status.json").write_bytes(bytes(range(256)))
  RunStatus(tmp_path).start()
  assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"
