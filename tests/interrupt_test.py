"""SIGTERM and Ctrl-C ask for a stop at the next step boundary instead of killing the run."""

import os
import signal

import pytest

from nn_jax.training.interrupt import StopRequest


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


def test_a_hand_over_signal_stops_first_then_reaches_the_earlier_handler():
  calls = []
  previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))  # submitit's requeue, say
  try:
    with StopRequest(hand_over=(signal.SIGUSR2,)) as stop:
      os.kill(os.getpid(), signal.SIGUSR2)
      assert stop.requested and stop.reason == "SIGUSR2"
      assert calls == []  # the run saves and stops first
    assert calls == [signal.SIGUSR2]
  finally:
    signal.signal(signal.SIGUSR2, previous)


def test_one_process_stops_at_the_boundary_after_its_own_signal():
  with StopRequest() as stop:
    stop.agree_across_processes()  # one process: nothing to agree with
    assert not stop.at_boundary()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.at_boundary()
