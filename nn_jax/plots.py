"""Headless plots of a run's metrics.jsonl: loss.png and, for classifiers, accuracy.png."""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def plot_metric(rows: list[dict], metric: str, path: pathlib.Path, title: str) -> bool:
  """Plots `metric` per epoch, one line per split; returns False when no row has it."""
  splits = sorted({row["split"] for row in rows if metric in row})
  if not splits:
    return False
  fig, ax = plt.subplots(figsize=(6, 4))
  for split in splits:
    points = [(row["epoch"], row[metric]) for row in rows if row["split"] == split and metric in row]
    ax.plot(*zip(*points), label=split, marker="." if len(points) < 50 else None)
  ax.set_xlabel("epoch")
  ax.set_ylabel(metric)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def plot_run(rows: list[dict], workdir: pathlib.Path, name: str) -> None:
  plot_metric(rows, "loss", workdir / "loss.png", f"{name}: loss")
  plot_metric(rows, "accuracy", workdir / "accuracy.png", f"{name}: accuracy")
