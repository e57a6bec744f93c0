"""Successive halving over a search's trials: train all a little, go on with the better part.

A sweep's `halving` {"metric", "mode", "every_epochs", "keep"} sets rungs at every_epochs, 2 *
every_epochs, ... before num_epochs. Every program of the search is set up once and trained to the
first rung; there each grid point's trials (all of them, without axes) are ranked by the metric,
averaged over their seeds at that epoch, and the best `keep` fraction (rounded up) go on to the next
rung; the others stop, by the mask early stopping uses (nn_jax/training/stopping.py): a halted run's
state stays as it was at its rung while the rest of its program trains on, and its folder ends with
exactly what it trained, its status.json "halted" at that rung. A trial with a diverged seed ranks
last. Ties go to the earlier trial.

The programs stay compiled from the first rung to the last, paused at each rung in turn. The decisions
are taken from the trials' metrics.jsonl rows at the rung, and a checkpoint holds the halted runs'
stops; a search resumed from checkpoints before a rung takes that rung's decision again, from the
same numbers. So a search killed during a rung or between rungs resumes to the same survivors and
ends bit-identical (tests/halving_test.py). ROOT/halving.json records every rung's ranking.
"""

import contextlib
import json
import math
import pathlib

from nn_jax.common import metrics
from nn_jax.training import trainer
from nn_jax.workdir import records


def rung_epochs(halving: dict, num_epochs: int) -> list[int]:
  """The epochs at which trials are ranked: every_epochs, 2 * every_epochs, ... before num_epochs."""
  return list(range(halving["every_epochs"], num_epochs, halving["every_epochs"]))


def survivors(count: int, keep: float) -> int:
  return max(1, math.ceil(count * keep))


def run(sweep: dict, points: list, groups: list[list[tuple]], root: pathlib.Path, stop, open_sessions) -> bool:
  """Trains the search's programs (`groups`, each [(config, run directory), ...]) rung by rung; False when a
  signal stopped it. `open_sessions(runs)` sets up a program's trainer sessions (more than one when its
  runs cannot train together)."""
  halving = sweep["halving"]
  num_epochs = points[0].configs[0].num_epochs
  rungs = rung_epochs(halving, num_epochs)
  point_of = {point.name: point for point in points}
  sessions, opened = [], []  # those not concluded yet; all, for their watchdogs
  try:
    for runs in groups:
      sessions += open_sessions(runs)
      opened = list(sessions)
    for rung, epoch in enumerate(rungs + [num_epochs], start=1):
      for session in sessions:
        stopped_by = trainer.run_loop(session, stop, until=epoch)
        if stopped_by:
          while sessions:
            trainer.conclude(sessions.pop(), stopped_by)
          return False
      if epoch < num_epochs and any(s.loop.epoch == epoch and s.loop.active.any() for s in sessions):
        rankings = [_rank(halving, rung, epoch, members, point_of)
                    for members in _brackets(sessions, rung, point_of).values()]
        for session in sessions:
          trainer.save_paused(session)
        _record(root, halving, num_epochs, rankings)
    for session in sessions:  # a program whose runs all halted saves them here, at their rungs
      trainer.save_paused(session, last=True)
    while sessions:
      session = sessions.pop(0)
      try:
        trainer.conclude(session)
      except trainer.Diverged as e:  # every run of the program: each one's status says so
        print(f"{', '.join(str(run.workdir.relative_to(root)) for run in session.runs)} diverged; the search goes "
              f"on ({e})", flush=True)
    return True
  except Exception as error:
    for session in sessions:
      trainer.record_failure(session, error)
    raise
  finally:
    for session in sessions:
      with contextlib.suppress(Exception):
        trainer.close(session)
    for session in opened:
      session.loop.watchdog.close()


def _brackets(sessions, rung: int, point_of: dict) -> dict[str, dict[str, list]]:
  """{bracket: {trial: [(session, run index), ...]}} of the trials that reached this rung: those with a run
  still training or halted here (a kill after its program saved this rung's decision)."""
  brackets = {}
  for session in sessions:
    for index, run in enumerate(session.runs):
      stopped = session.loop.stoppers[index].stopped
      if session.loop.active[index] or (stopped and stopped.get("rung") == rung):
        point = point_of[run.workdir.parent.name]
        brackets.setdefault(point.bracket, {}).setdefault(point.name, []).append((session, index))
  return brackets


def _rank(halving: dict, rung: int, epoch: int, trials: dict[str, list], point_of: dict) -> dict:
  """Ranks one bracket's trials at this rung, halts those that do not go on, and returns the ranking."""
  metric = halving["metric"]
  split, name = metric.split("/")
  sign = 1 if metrics.mode(metric, halving.get("mode", "auto")) == "min" else -1
  ranking = []
  for trial, members in trials.items():
    values = []
    for session, index in members:
      rows = [row for row in records.read_metrics(session.runs[index].workdir)
              if row["epoch"] == epoch and row["split"] == split and name in row]
      if rows:
        values.append(rows[-1][name])
    mean = sum(values) / len(values) if values else float("nan")
    complete = len(values) == len(point_of[trial].configs) and math.isfinite(mean)  # a diverged seed: not
    ranking.append({"trial": trial, "value": mean, "seeds": len(values), "complete": complete})
  ranking.sort(key=lambda r: (not r["complete"], sign * r["value"] if r["complete"] else 0.0,
                              point_of[r["trial"]].trial or 0))
  kept = survivors(len(ranking), halving["keep"])
  for place, entry in enumerate(ranking, start=1):
    entry["kept"] = place <= kept
    if entry["kept"]:
      continue
    reason = (f"halted at rung {rung} (epoch {epoch}): {metric} {entry['value']:.6g} over {entry['seeds']} "
              f"seed(s) ranked {place} of {len(ranking)}; the best {kept} went on")
    for session, index in trials[entry["trial"]]:
      if session.loop.active[index]:
        trainer.halt(session, index, rung, reason)
  return {"rung": rung, "epoch": epoch, "bracket": point_of[ranking[0]["trial"]].bracket, "ranking": ranking}


def _record(root: pathlib.Path, halving: dict, num_epochs: int, rankings: list[dict]) -> None:
  """ROOT/halving.json: the halving's settings and every rung's ranking so far (a rung decided again after a
  restart replaces its entry, with the same content)."""
  path = root / "halving.json"
  previous = json.loads(path.read_text())["rungs"] if path.is_file() else []
  decided = {(r["bracket"], r["rung"]): r for r in previous}
  decided.update({(r["bracket"], r["rung"]): r for r in rankings})
  split = halving["metric"].split("/")[0]
  records.write_json(path, {**halving, "split": split, "num_epochs": num_epochs,
                            "rungs": sorted(decided.values(), key=lambda r: (r["rung"], r["bracket"]))})


def load(root: pathlib.Path) -> dict | None:
  """ROOT/halving.json, or None for a sweep without halving."""
  path = root / "halving.json"
  return json.loads(path.read_text()) if path.is_file() else None
