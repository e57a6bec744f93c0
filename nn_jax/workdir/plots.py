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


def plot_search(trials: list[dict], keys: list[str], log_keys: set, metric: str, path: pathlib.Path) -> None:
  """The final `metric` of each trial against each searched key, one panel per key; `trials`: [{"values":
  {key: value}, "value": metric, "epochs": trained}]. Colour: epochs trained (halted trials stopped early)."""
  fig = figure(figsize=(4 * len(keys), 3.8))
  axes = fig.subplots(1, len(keys), squeeze=False)[0]
  epochs = [trial["epochs"] for trial in trials]
  for ax, key in zip(axes, keys):
    values = [trial["values"][key] for trial in trials]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    labels = sorted({str(v) for v in values}) if not numeric else None
    x = values if numeric else [labels.index(str(v)) for v in values]
    dots = ax.scatter(x, [trial["value"] for trial in trials], c=epochs, cmap="viridis", s=18)
    if key in log_keys:
      ax.set_xscale("log")
    if labels:
      ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel(key)
    ax.set_ylabel(f"final {metric}")
    ax.grid(alpha=0.3)
  fig.colorbar(dots, ax=list(axes), label="epochs trained")
  fig.savefig(path, dpi=100)
