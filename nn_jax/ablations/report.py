"""`python -m nn_jax report DIR`: every run below DIR, compared.

Runs are grouped into grid points by their config minus the seed; what varies
between points names them. Writes into DIR:
  runs.csv      one row per run: its point, seed, final metrics, train seconds
  results.md    per point, mean +/- std over seeds of each final metric
  curves.png    learning curve of `metric` per point: mean line, std band
  final.png     bar chart of the final `metric` per point, std as error bars
A search's report adds its rungs, its best trials and search.png (nn_jax/ablations/search_report.py)
and draws the curves of its best 8 trials instead of final.png. It also writes ROOT/hparams.*, the
columns of TensorBoard's HParams dashboard.
"""

import csv
import json
import pathlib

import numpy as np

from nn_jax.ablations import search_report, stats
from nn_jax.common.errors import UserError
from nn_jax.training import hparams
from nn_jax.workdir import plots, records, tensorboard_hparams


def find_runs(root: pathlib.Path) -> list[pathlib.Path]:
  return sorted(path.parent for path in root.rglob("summary.json") if (path.parent / "config.json").is_file())


def find_diverged(root: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
  """(run directory, message) of every run below `root` that diverged: no final metrics, but a record."""
  diverged = []
  for path in sorted(root.rglob("status.json")):
    try:
      status = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
      continue
    if status.get("status") == "diverged":
      diverged.append((path.parent, status.get("message", "")))
  return diverged


def load_run(workdir: pathlib.Path) -> dict:
  config = records.flatten(records.read_config(workdir))
  summary = records.read_summary(workdir)
  if not isinstance(summary.get("final"), dict):
    raise UserError(f"{workdir / 'summary.json'} has no final metrics; train the run again with the same "
                    f"--workdir to rewrite it, or remove the run")
  final = {f"{split}/{k}": v for split, metrics in summary["final"].items() for k, v in metrics.items()}
  final.update({f"{split}/{k}": v for split, metrics in summary.get("reference", {}).items() for k, v in metrics.items()})
  final.update({"predict(" + ",".join(f"{v:g}" for v in p["input"]) + ")": p["prediction"]
                for p in summary.get("predictions", [])})
  return {"workdir": workdir, "config": config, "final": final, "train_seconds": summary.get("train_seconds"),
          "epochs": summary.get("epochs", config.get("num_epochs")),
          "final_names": [f"{split}/{k}" for split, metrics in summary["final"].items() for k in metrics],
          "shared_program": summary.get("runs_in_program", 1) > 1, "curves": records.read_metrics(workdir)}


def _point_label(config: dict, varying: list[str]) -> str:
  short = {key: key.split(".")[-1] for key in varying}
  if len(set(short.values())) < len(varying):  # two keys end alike: keep them whole
    short = {key: key for key in varying}
  return ", ".join(f"{short[key]}={config.get(key)}" for key in varying) or "all runs"


def group(runs: list[dict]) -> tuple[list[str], dict[str, list[dict]]]:
  """(the config keys that vary between runs, {point label: its runs})."""
  keys = sorted(key for key in {key for run in runs for key in run["config"]}
                if hparams.Trait.REPLICATE not in hparams.traits(key))
  varying = [key for key in keys if len({json.dumps(run["config"].get(key)) for run in runs}) > 1]
  def natural(run):  # 2 before 16, (4,) before (16,): order points by their values, not their text
    return tuple(json.dumps(run["config"].get(key)) if not isinstance(run["config"].get(key), (int, float, list))
                 else run["config"].get(key) for key in varying)

  points: dict[str, list[dict]] = {}
  for run in sorted(runs, key=natural):
    points.setdefault(_point_label(run["config"], varying), []).append(run)
  return varying, points


def default_metric(runs: list[dict]) -> str:
  for metric in ("test/accuracy", "test/rmse", "test/loss", "train/loss"):
    if all(metric in run["final"] for run in runs):
      return metric
  raise UserError("the runs share no final metric to report; pass --metric SPLIT/NAME")


def mean_std(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.4g} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.2g}"


def statistics(metric: str, points: dict) -> str:
  """`metric` per point with its 95% interval and training cost, and each point against the best, paired."""
  lines = [f"{metric}: mean over seeds with its 95% Student-t interval; every point against the best, paired by "
           f"seed.", "", "| point | seeds | mean | 95% CI | train s per run |", "|---|---|---|---|---|"]
  by_point = {}
  for label, members in points.items():
    values = {run["config"].get("seed"): run["final"][metric] for run in members if metric in run["final"]}
    if not values:
      continue
    by_point[label] = values
    mean, lower, upper = stats.interval(list(values.values()))
    seconds = np.mean([run["train_seconds"] or 0.0 for run in members])
    lines.append(f"| {label} | {len(values)} | {mean:.4g} | {lower:.4g} to {upper:.4g} | {seconds:.3g} |")
  lines.append("")
  lines += [f"- {comparison.verdict(metric)}" for comparison in stats.against_the_best(metric, by_point)]
  return "\n".join(lines) + "\n"


def write_report(root: pathlib.Path, metric: str = "", out: pathlib.Path | None = None) -> str:
  """Writes the report files into `out` (default: `root`) and returns the Markdown table."""
  out = out or root
  runs = [load_run(workdir) for workdir in find_runs(root)]
  if not runs:
    diverged = len(find_diverged(root))
    raise UserError(f"no finished runs (folders with summary.json and config.json) below {root}"
                    + (f"; {diverged} diverged" if diverged else ""))
  metric = metric or default_metric(runs)
  metric_names = sorted({name for run in runs for name in run["final"]})
  if "/" not in metric:  # checked before anything is written
    raise UserError(f"--metric {metric!r} must be SPLIT/NAME, e.g. test/rmse")
  if metric not in metric_names:
    raise UserError(f"--metric {metric!r}: no run has it; they have {', '.join(n for n in metric_names if '/' in n)}")
  varying, points = group(runs)
  out.mkdir(parents=True, exist_ok=True)

  with open(out / "runs.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["workdir", "point", "seed", *metric_names, "train_seconds"])
    for label, members in points.items():
      for run in members:
        writer.writerow([run["workdir"].relative_to(root), label, run["config"].get("seed"),
                         *[run["final"].get(name, "") for name in metric_names], run["train_seconds"]])

  shown = [name for name in metric_names if not name.startswith("train/grad")]
  lines = ["| point | seeds | " + " | ".join(shown) + " | train s |",
           "|---|---|" + "---|" * len(shown) + "---|"]
  for label, members in points.items():
    cells = [mean_std([run["final"][name] for run in members]) if all(name in run["final"] for run in members) else ""
             for name in shown]
    lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) +
                 f" | {mean_std([run['train_seconds'] for run in members])} |")
  table = "\n".join(lines) + "\n"
  diverged = find_diverged(root)
  if diverged:
    table += "\nDiverged, so no final metrics:\n\n" + "".join(
        f"- {workdir.relative_to(root)}: {message.split(';')[0]}\n" for workdir, message in diverged)
  searched = search_report.is_search(root)
  if searched:  # its trials' own section; the table above lists every trial
    table += "\n" + search_report.section(root, runs, metric, out)
    best = {members[0]["workdir"].parent.name for _, members in search_report.best_trials(
        runs, metric, max(run["epochs"] for run in runs), search_report.ranking_metric(root, metric))[:8]}
    points = {label: members for label, members in points.items() if members[0]["workdir"].parent.name in best}
  else:
    table += "\n" + statistics(metric, points)
  note = (" Runs trained together as one vmapped program each report the program's training time divided by "
          "their count." if any(run["shared_program"] for run in runs) else "")
  records.write_text_atomically(
      out / "results.md", f"Final metrics, mean ± std over seeds (`python -m nn_jax report {root}`).{note}\n\n" + table)

  split, name = metric.split("/", 1)
  curves = {}
  for label, members in points.items():
    per_run = [{row["epoch"]: row[name] for row in run["curves"] if row["split"] == split and name in row}
               for run in members]
    epochs = sorted(set.intersection(*(set(c) for c in per_run)))
    if epochs:
      curves[label] = (epochs, np.array([[c[e] for e in epochs] for c in per_run]))
  plots.plot_bands(curves, metric, out / "curves.png")
  finals = {label: np.array([run["final"][metric] for run in members]) for label, members in points.items()
            if all(metric in run["final"] for run in members)}
  if not searched:
    plots.plot_bars(finals, metric, out / "final.png")
  write_tensorboard_experiment(root, runs)
  return table


def write_tensorboard_experiment(root: pathlib.Path, runs: list[dict] | None = None) -> None:
  """ROOT/hparams.*: the sweep's varying keys (a searched key's range, a grid axis's values) and its runs'
  final metrics, the columns of TensorBoard's HParams dashboard over `tensorboard --logdir ROOT`. `runs`:
  load_run's, when the caller has them."""
  runs = runs if runs is not None else [load_run(workdir) for workdir in find_runs(root)]
  if not runs:
    return
  varying, _ = group(runs)
  space = search_report.load_sweep(root).get("space", {})
  domains = {}
  for key in varying:
    if key in space and space[key][0] != "choice":
      domains[key] = ("interval", space[key][1], space[key][2])
    else:
      domains[key] = ("values", list({json.dumps(run["config"].get(key)): run["config"].get(key)
                                      for run in runs}.values()))
  tags = sorted({f"final/{name}" for run in runs for name in run["final_names"]})
  tensorboard_hparams.write_experiment(root, domains, tags)
