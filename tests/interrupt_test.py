"""SIGTERM and Ctrl-C ask for a stop at the next step boundary instead of killing the run."""

import os
import signal

import pytest

from nn_jax.interrupt import StopRequest


def test_the_first_signal_requests_a_stop_and_handlers_are_restored():
  previous = signal.getsignal(signal.SIGTERM)
  with StopRequest() as stop:
    assert not stop.requested
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.requested and stop.reason == "SIGTERM"
  assert signal.getsignal(signal.SIGTERM) == previous


def test_a_second_ctrl_c_interrupts_at_once():
  with StopRequest() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.requested
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
