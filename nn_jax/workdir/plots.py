"""Headless plots of a run's metrics.jsonl: loss.png and, for classifiers, accuracy.png."""

import pathlib


def figure(**kwargs):
  """A matplotlib Figure, not pyplot: no global backend, so notebooks keep theirs. Matplotlib is
  imported when a run draws, not when this module is imported."""
  from matplotlib.figure import Figure
  return Figure(**kwargs)


def plot_metric(rows: list[dict], metric: str, path: pathlib.Path, title: str, ylabel: str = "") -> bool:
  """Plots `metric` per epoch, one line per split; returns False when no row has it."""
  splits = sorted({row["split"] for row in rows if metric in row})
  if not splits:
    return False
  fig = figure(figsize=(6, 4))
  ax = fig.subplots()
  for split in splits:
    points = [(row["epoch"], row[metric]) for row in rows if row["split"] == split and metric in row]
    ax.plot(*zip(*points), label=split, marker="." if len(points) < 50 else None)
  ax.set_xlabel("Epoch")
  ax.set_ylabel(ylabel or metric)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return True


def plot_run(rows: list[dict], workdir: pathlib.Path, name: str, curve: tuple[str, str] = ("loss", "Loss")) -> None:
  """loss.png: the learning curve `curve` = (metric, axis label) names; accuracy.png for classifiers."""
  metric, label = curve
  plot_metric(rows, metric, workdir / "loss.png", f"{name}: loss per epoch", label)
  plot_metric(rows, "accuracy", workdir / "accuracy.png", f"{name}: accuracy per epoch", "Accuracy")


def plot_bands(curves: dict, metric: str, path: pathlib.Path) -> None:
  """One mean line and a +/- std band per point; `curves` maps a label to (epochs, runs x epochs)."""
  fig = figure(figsize=(7, 4.5))
  ax = fig.subplots()
  for label, (epochs, values) in curves.items():
    mean, std = values.mean(axis=0), values.std(axis=0)
    ax.plot(epochs, mean, label=f"{label} (n={len(values)})")
    ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
  ax.set_xlabel("epoch")
  ax.set_ylabel(metric)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_bars(finals: dict, metric: str, path: pathlib.Path) -> None:
  """The final metric per point: the mean as a bar, the std as its error bar."""
  labels = list(finals)
  fig = figure(figsize=(max(5, 0.6 * len(labels) + 2), 4.5))
  ax = fig.subplots()
  ax.bar(range(len(labels)), [finals[l].mean() for l in labels], yerr=[finals[l].std() for l in labels], capsize=3)
  ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
  ax.set_ylabel(f"final {metric}")
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
