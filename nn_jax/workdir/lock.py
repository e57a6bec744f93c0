"""One writer per run directory: a lock file naming its holder.

`RunLock(workdir)` takes an exclusive `flock` on WORKDIR/.lock and writes the
holder's pid, host and start time into it. A second `train` or `sweep` on the
same directory is refused with one line naming the holder. The operating system
drops the lock when its holder dies (SIGKILL included), so a lock left by a
dead process is simply taken over; the file's contents are only for the message.
"""

import datetime
import fcntl
import json
import os
import pathlib
import socket

from nn_jax.common.errors import UserError


class RunLock:

  def __init__(self, directory: pathlib.Path):
    self.path = directory / ".lock"
    try:
      self._file = open(self.path, "a+")
    except OSError as e:  # a folder of that name, a file this user cannot write
      raise UserError(f"the lock file {self.path} cannot be opened ({e.strerror}); remove it (it only names the "
                      f"process that holds the run directory) and start again") from None
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      holder = self._file.read().strip() or "another process"
      self._file.close()
      raise UserError(f"{directory} is in use by {_describe(holder)}; wait for it to finish, stop it, or use "
                      f"another --workdir") from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.datetime.now().isoformat(timespec="seconds")}))
    self._file.flush()

  def release(self) -> None:
    if not self._file.closed:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()


def _describe(holder: str) -> str:
  try:
    fields = json.loads(holder)
    return f"pid {fields['pid']} on {fields['host']} (since {fields['since']})"
  except (ValueError, KeyError, TypeError):
    return holder
