"""The watchdog: a phase past its limit is reported (process, phase, step) and ends the process."""

import threading
import time

import pytest

from nn_jax.training import watchdog as watchdog_lib
from nn_jax.training.watchdog import EXIT_STUCK, Watchdog


class _Exits:
  def __init__(self):
    self.codes, self.done = [], threading.Event()

  def __call__(self, code):
    self.codes.append(code)
    self.done.set()


def test_a_phase_past_its_limit_is_reported_and_ends_the_process(capsys):
  exits, reports = _Exits(), []
  dog = Watchdog(seconds=0.5, first_seconds=0.5, process="process 1 of 2", exit=exits,
                 on_stuck=lambda details, message: reports.append(details))
  with dog.phase("waiting for train steps", step=40):
    assert exits.done.wait(5)
  dog.close()
  assert exits.codes == [EXIT_STUCK]
  assert reports[0]["process"] == "process 1 of 2" and reports[0]["phase"] == "waiting for train steps"
  assert reports[0]["step"] == 40 and reports[0]["seconds"] >= 0.5
  assert "process 1 of 2 stuck in waiting for train steps at step 40" in capsys.readouterr().err


def test_phases_within_their_limit_pass():
  exits = _Exits()
  dog = Watchdog(seconds=0.6, first_seconds=0.6, exit=exits)
  for step in range(3):
    with dog.phase("dispatching train steps", step):
      time.sleep(0.2)
  time.sleep(0.8)  # between phases nothing is watched
  dog.close()
  assert exits.codes == []


def test_the_innermost_phase_is_watched():
  exits, reports = _Exits(), []
  dog = Watchdog(seconds=0.5, first_seconds=0.5, exit=exits, on_stuck=lambda d, m: reports.append(d))
  with dog.phase("checkpoint save", 8):
    with dog.phase("waiting for train steps", 8):
      assert exits.done.wait(5)
  dog.close()
  assert reports[0]["phase"] == "waiting for train steps"


def test_limits_first_occurrence_fixed_and_auto():
  fixed = Watchdog(seconds=30, first_seconds=600)
  auto = Watchdog(seconds=0, first_seconds=600)
  for dog in (fixed, auto):
    assert dog.limit("evaluation") == 600  # a phase's first occurrence: compilation, the first save
    for seconds in (1.0, 2.0, 9.0):
      dog._durations.setdefault("evaluation", []).append(seconds)
    dog.close()
  assert fixed.limit("evaluation") == 30
  assert auto.limit("evaluation") == watchdog_lib.AUTO_FACTOR * 2.0 + watchdog_lib.AUTO_MARGIN_SECONDS


def test_off_starts_no_thread():
  dog = Watchdog(seconds=-1, first_seconds=600)
  assert dog._thread is None
  with dog.phase("evaluation", 0):
    pass
  dog.close()


@pytest.mark.parametrize("key,value", [("watchdog_seconds", -2.0), ("watchdog_first_seconds", 0.0)])
def test_bad_limits_are_refused(key, value):
  from conftest import experiment
  from nn_jax.common.errors import UserError
  with pytest.raises(UserError, match=f"config.{key}"):
    experiment("fnn_binary", f"{key}={value}")
