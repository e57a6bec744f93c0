"""SIGTERM and Ctrl-C ask a run to stop at the next step boundary, after saving, instead of dying."""

import signal
import threading


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
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False
