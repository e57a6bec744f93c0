"""One writer per run directory."""

import multiprocessing
import os
import signal

import pytest

from nn_jax.common.errors import UserError
from nn_jax.workdir.lock import RunLock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
  lock = RunLock(tmp_path)
  with pytest.raises(UserError, match=f"is in use by pid {os.getpid()} on .* \\(since "):
    RunLock(tmp_path)
  lock.release()
  RunLock(tmp_path).release()  # free again once released


def _hold_and_die(directory, ready):
  RunLock(directory)
  ready.set()
  os.kill(os.getpid(), signal.SIGKILL)  # dies holding the lock, as a killed run does


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  ready = multiprocessing.get_context("fork").Event()
  holder = multiprocessing.get_context("fork").Process(target=_hold_and_die, args=(tmp_path, ready))
  holder.start()
  holder.join(timeout=30)
  assert ready.is_set() and holder.exitcode == -signal.SIGKILL
  assert (tmp_path / ".lock").exists()  # its file is still there, naming the dead holder ...
  RunLock(tmp_path).release()  # ... but the operating system dropped its lock


def test_a_lock_file_that_cannot_be_opened_is_one_line_naming_it(tmp_path):
  (tmp_path / ".lock").mkdir()  # as an unwritable file would be for a user other than root
  with pytest.raises(UserError, match=r"the lock file .*\.lock cannot be opened .*; remove it"):
    RunLock(tmp_path)
