"""SIGTERM and Ctrl-C ask a run to stop at the next step boundary, after saving, instead of dying.

`catch_early()` (python -m nn_jax's first act) records a signal that comes while
the program is still starting up; the StopRequest of a train or sweep takes it
over, so a signal at any moment stops the run cleanly.
"""

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
  """While active, the first SIGTERM or SIGINT sets `requested`; a second SIGINT interrupts at once."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.reason = ""
    self._previous = {}

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True
    self.reason = signal.Signals(signum).name
    print(f"\n{self.reason} received: stopping at the next step boundary after saving a checkpoint "
          f"(Ctrl-C again to stop at once).", flush=True)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    if _early["reason"]:  # came while the program was starting
      self.requested, self.reason = True, _early["reason"]
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False
