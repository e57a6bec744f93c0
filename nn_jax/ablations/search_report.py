"""The report's part for a search (a sweep with a space): its rungs, its best trials, what it trained.

Reads ROOT/sweep.json (the space, trials, sampler, halving) and ROOT/halving.json (each rung's
ranking); writes search.png, the final metric against each searched key (log axes for log-uniform
keys), and returns the Markdown for results.md.
"""

import json
import pathlib

import numpy as np

from nn_jax.ablations import halving, search, stats
from nn_jax.common import metrics as metric_directions
from nn_jax.workdir import plots

BEST = 10  # trials listed


def load_sweep(root: pathlib.Path) -> dict:
  path = root / "sweep.json"
  return json.loads(path.read_text()) if path.is_file() else {}


def is_search(root: pathlib.Path) -> bool:
  return bool(load_sweep(root).get("space"))


def _trials(runs: list[dict]) -> dict[str, list[dict]]:
  """{trial folder: its runs (one per seed)}."""
  trials = {}
  for run in runs:
    trials.setdefault(run["workdir"].parent.name, []).append(run)
  return trials


def best_trials(runs: list[dict], metric: str, num_epochs: int, ranked_by: str = "") -> list[tuple[str, list[dict]]]:
  """The trials that trained to num_epochs and report `metric`, best mean `ranked_by` (default: `metric`) first."""
  ranked_by = ranked_by or metric
  finished = {name: members for name, members in _trials(runs).items()
              if all(run["epochs"] == num_epochs and {metric, ranked_by} <= set(run["final"]) for run in members)}
  sign = -1 if metric_directions.higher_is_better(ranked_by) else 1
  return sorted(finished.items(), key=lambda item: sign * np.mean([run["final"][ranked_by] for run in item[1]]))


def ranking_metric(root: pathlib.Path, metric: str) -> str:
  """What orders a search's best trials: its halving metric (the split it chose by), else `metric`."""
  record = halving.load(root)
  return record["metric"] if record else metric


def section(root: pathlib.Path, runs: list[dict], metric: str, out: pathlib.Path) -> str:
  sweep = load_sweep(root)
  space = sweep["space"]
  keys = list(space)
  num_epochs = max(run["epochs"] for run in runs)
  described = ", ".join(f"{key} ({' '.join(str(a) for a in distribution)})" for key, distribution in space.items())
  lines = ["## Search", "", f"{sweep['trials']} trials drawn by {sweep.get('sampler', 'quasi_random')} "
           f"(search_seed {sweep.get('search_seed', 0)}) over {described}; seeds {sweep['seeds']}."]
  record = halving.load(root)
  if record:
    lines += [f"Successive halving ranked the trials by {record['metric']} (the {record['split']} split), mean over "
              f"seeds, every {record['every_epochs']} epochs, keeping the best {record['keep']:g} (rounded up).",
              "", "| rung | epoch | trials ranked | went on |", "|---|---|---|---|"]
    for rung in record["rungs"]:
      lines.append(f"| {rung['rung']}{' ' + rung['bracket'] if rung['bracket'] else ''} | {rung['epoch']} | "
                   f"{len(rung['ranking'])} | {sum(entry['kept'] for entry in rung['ranking'])} |")
  trials = _trials(runs)
  ranked_by = ranking_metric(root, metric)
  finished = best_trials(runs, metric, num_epochs, ranked_by)
  order = f"final {ranked_by}, as the search ranked them" if ranked_by != metric else metric
  lines += ["", f"{len(finished)} of {len(trials)} trials trained all {num_epochs} epochs. The best by {order}; "
            f"{metric} as mean over seeds with its 95% Student-t interval:", "",
            "| trial | " + " | ".join(key.split(".")[-1] for key in keys) + " | seeds |"
            + (f" {ranked_by} |" if ranked_by != metric else "") + f" {metric} | 95% CI |",
            "|---|" + "---|" * len(keys) + "---|---|---|" + ("---|" if ranked_by != metric else "")]
  for name, members in finished[:BEST]:
    mean, lower, upper = stats.interval([run["final"][metric] for run in members])
    values = [members[0]["config"].get(key) for key in keys]
    ranking = f" {np.mean([run['final'][ranked_by] for run in members]):.4g} |" if ranked_by != metric else ""
    lines.append(f"| {name.split('_')[0]} | " + " | ".join(str(v) for v in values)
                 + f" | {len(members)} |{ranking} {mean:.4g} | {lower:.4g} to {upper:.4g} |")
  trained = sum(run["epochs"] for run in runs)
  full = len(runs) * num_epochs
  seconds = sum(run["train_seconds"] or 0.0 for run in runs)
  lines += ["", f"Training: {seconds:.3g} s in all (each run's share of its program's time after compilation); "
            f"{trained:,} run-epochs trained, of the {full:,} that {len(runs)} full runs would train "
            f"({trained / full:.0%})."]
  points = [{"values": {key: members[0]["config"].get(key) for key in keys},
             "value": float(np.mean([run["final"][metric] for run in members])),
             "epochs": members[0]["epochs"]} for members in trials.values()
            if all(metric in run["final"] for run in members)]
  plots.plot_search(points, keys, {key for key in keys if search.log_scale(space, key)}, metric, out / "search.png")
  lines += ["", f"search.png: the final {metric} of every trial against each searched key (colour: epochs "
            f"trained; a halted trial's metric is where it stopped)."]
  return "\n".join(lines) + "\n"
