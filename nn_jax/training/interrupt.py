"""SIGTERM and Ctrl-C ask a run to stop at the next step boundary, after saving, instead of dying.

`catch_early()` (python -m nn_jax's first act) records a signal that comes while
the program is still starting up; the StopRequest of a train or sweep takes it
over, so a signal at any moment stops the run cleanly.

In a multi-process run the processes must stop at the same step, or the one that
got the signal enters a collective save while the others enter the next step and
the job hangs. There JAX's preemption service decides: `jax.distributed.initialize`
hands SIGTERM to its notifier, which tells every process, and each one asks
`multihost_utils.reached_preemption_sync_point` at every dispatch boundary
(`at_boundary`) until all agree on the same one.
"""

import os
import signal
import threading

_early = {"reason": ""}


def _record_early(signum, frame):
  _early["reason"] = signal.Signals(signum).name


def catch_early() -> None:
  """Records SIGTERM/SIGINT from now on, until a StopRequest (or `stop_catching`) takes over."""
  for signum in StopRequest.SIGNALS:
    signal.signal(signum, _record_early)


def stop_catching() -> None:
  """Default signal handling again (commands with nothing to save); a signal already caught ends the process."""
  for signum in StopRequest.SIGNALS:
    signal.signal(signum, signal.SIG_DFL)
  if _early["reason"]:
    raise SystemExit(f"{_early['reason']} received; stopped.")


class StopRequest:
  """While active, the first SIGTERM or SIGINT sets `requested`; a second SIGINT interrupts at once.

  `hand_over`: signals whose earlier handler runs once the request has ended, after the run saved and
  stopped (submitit's preemption signal: its handler requeues the job).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, hand_over: tuple = ()):
    self.requested = False
    self.reason = ""
    self.received = None  # the signal that asked, for hand_over
    self._hand_over = tuple(hand_over)
    self._previous = {}
    self._agreed_across_processes = False
    self._boundaries = 0

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self._agreed_across_processes and signum != signal.SIGTERM:  # JAX's notifier tells every process
      self.received = signum
      os.kill(os.getpid(), signal.SIGTERM)
      return
    self.requested, self.received = True, signum
    self.reason = signal.Signals(signum).name
    print(f"\n{self.reason} received: stopping at the next step boundary after saving a checkpoint "
          f"(Ctrl-C again to stop at once).", flush=True)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
      for signum in (*self.SIGNALS, *self._hand_over):
        self._previous[signum] = signal.signal(signum, self._handle)
    if _early["reason"]:  # came while the program was starting
      self.requested, self.reason = True, _early["reason"]
    return self

  def agree_across_processes(self) -> None:
    """After `jax.distributed.initialize` with several processes: stop only where all of them agree.

    JAX's preemption notifier now handles SIGTERM; SIGINT and the hand-over signals are passed to it as
    SIGTERM, and so is a request that came before, so that this process stops where the others do."""
    import jax  # imported here: python -m nn_jax reports bad input before JAX starts
    if jax.process_count() <= 1 or not jax.config.jax_enable_preemption_service:
      return
    self._agreed_across_processes = True
    if self.requested:
      self.requested, self.reason = False, ""
      os.kill(os.getpid(), signal.SIGTERM)

  def at_boundary(self) -> bool:
    """Whether to stop here, at a dispatch boundary: every process calls it at each of them, in step."""
    if self._agreed_across_processes and not self.requested:
      from jax.experimental import multihost_utils
      self._boundaries += 1
      if multihost_utils.reached_preemption_sync_point(self._boundaries):
        self.requested, self.reason = True, "SIGTERM (all processes agreed)"
        print(f"\nA process was asked to stop: every process stops here, at dispatch boundary "
              f"{self._boundaries}, after saving a checkpoint.", flush=True)
    return self.requested

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    handed_over = self._previous.get(self.received) if self.received in self._hand_over else None
    if exc[0] is None and self.requested and callable(handed_over):
      handed_over(self.received, None)
    return False

