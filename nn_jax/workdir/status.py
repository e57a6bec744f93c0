"""status.json: what a run directory's run is doing, or how it ended.

`status` is running, done, diverged, preempted or failed (an error ended it;
`message` says which). A run that finds "running"
at its start knows the previous process died without a word (SIGKILL, OOM,
power), and counts it in `kills`; SIGTERM and Ctrl-C count in `preemptions`.
"""

import datetime
import json
import pathlib

from nn_jax.workdir import records


class RunStatus:

  def __init__(self, workdir: pathlib.Path, enabled: bool = True):
    self.enabled = enabled  # False on all but the primary process of a multi-host run
    self.path = workdir / "status.json"
    self.fields = {"status": "new", "preemptions": 0, "kills": 0, "steps_done": 0, "epochs_done": 0,
                   "last_checkpoint_step": None, "message": ""}
    if self.path.is_file():
      try:
        self.fields.update(json.loads(self.path.read_text()))
      except (json.JSONDecodeError, UnicodeDecodeError):
        pass  # rewritten below; the checkpoints, not this file, decide where a run resumes

  def start(self, last_checkpoint_step) -> None:
    """The run (re)starts from its checkpoints, whose latest is `last_checkpoint_step` (None: none), whatever
    a lost or damaged status.json said."""
    if self.fields["status"] == "running":
      self.fields["kills"] += 1
    self.update(status="running", message="", last_checkpoint_step=last_checkpoint_step)

  def update(self, **fields) -> None:
    self.fields.update(fields, updated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    if self.enabled:
      records.write_json(self.path, self.fields)
