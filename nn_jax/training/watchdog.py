"""A watchdog for hangs: a phase of training that runs far longer than it should ends the process.

A multi-host job whose peer died or stalled waits forever in a collective, holding every
accelerator, and says nothing. The loop marks what it is doing (`with watchdog.phase("train steps",
step):`); a thread checks the phase's age against its limit and, past it, prints which process, step
and phase is stuck, records it (`on_stuck`, which writes status.json) and exits with EXIT_STUCK so
that a scheduler can requeue the job, which resumes from its last checkpoint.

Limits (config.watchdog_seconds): a positive number is the limit of every phase; 0 (auto) is ten
times the median of that phase's earlier durations plus a minute. A phase's first occurrence
(compilation, the first save) gets config.watchdog_first_seconds instead. -1 turns it off.
"""

import collections
import contextlib
import os
import statistics
import sys
import threading
import time

EXIT_STUCK = 75  # EX_TEMPFAIL: "try again later", for the scheduler
AUTO_FACTOR, AUTO_MARGIN_SECONDS = 10, 60
AUTO_HISTORY = 100  # the median of a phase's last this many durations


class Watchdog:

  def __init__(self, seconds: float, first_seconds: float, process: str = "process 0 of 1", on_stuck=None,
               exit=os._exit):  # os._exit: the main thread is stuck, so nothing it would run can run
    self.seconds, self.first_seconds = seconds, first_seconds
    self.process, self.on_stuck, self._exit = process, on_stuck, exit
    self._durations = {}  # phase -> its last AUTO_HISTORY durations
    self._phases = []  # (name, step, start), innermost last
    self._lock = threading.Lock()
    self._stopped = threading.Event()
    self._thread = None
    if seconds >= 0:
      self._thread = threading.Thread(target=self._watch, name="nn_jax-watchdog", daemon=True)
      self._thread.start()

  def limit(self, phase: str) -> float:
    earlier = self._durations.get(phase)
    if not earlier:
      return self.first_seconds
    if self.seconds > 0:
      return self.seconds
    return AUTO_FACTOR * statistics.median(earlier) + AUTO_MARGIN_SECONDS

  @contextlib.contextmanager
  def phase(self, name: str, step: int):
    """Marks what the main thread is doing; phases nest (a save waits for train steps), the innermost is watched."""
    entry = (name, step, time.monotonic())
    with self._lock:
      self._phases.append(entry)
    try:
      yield
    finally:
      with self._lock:
        self._phases.remove(entry)
        self._durations.setdefault(name, collections.deque(maxlen=AUTO_HISTORY)).append(time.monotonic() - entry[2])

  def _watch(self) -> None:
    while not self._stopped.wait(0.5):
      with self._lock:
        if not self._phases:
          continue
        name, step, start = self._phases[-1]
        limit = self.limit(name)
      elapsed = time.monotonic() - start
      if elapsed > limit:
        message = (f"watchdog: {self.process} stuck in {name} at step {step} for {elapsed:.1f} s (limit "
                   f"{limit:.1f} s); a peer process may have died or stalled. Exiting with code {EXIT_STUCK} "
                   f"so that the scheduler can requeue; the run resumes from its last checkpoint.")
        print(f"nn_jax: {message}", file=sys.stderr, flush=True)
        if self.on_stuck is not None:
          self.on_stuck({"process": self.process, "phase": name, "step": step, "seconds": round(elapsed, 1),
                         "limit_seconds": round(limit, 1)}, message)
        self._exit(EXIT_STUCK)
        return

  def close(self) -> None:
    self._stopped.set()
    if self._thread is not None:
      self._thread.join()
