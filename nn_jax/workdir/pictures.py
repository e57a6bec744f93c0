"""The pictures a finished run draws beside its learning curves, where people would rather look than read.

  MNIST           confusion.png (test confusion matrix), worst.png (the 16 test digits the model got
                  most confidently wrong, true and predicted labels)
  breast cancer   roc.png (the test ROC curve and its AUC)
  time series     forecast.png (the test targets, the model's forecast and the naive "next = last")
  house prices    price_by_size.png (predicted price against size for a few ages, the 20 houses)
Headless (matplotlib Figures, no pyplot) and deterministic: the same run draws the same pixels.
"""

import pathlib

import numpy as np

from nn_jax.workdir import plots


def _save(fig, path: pathlib.Path) -> None:
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def digits(images: np.ndarray, labels: np.ndarray, logits: np.ndarray, workdir: pathlib.Path) -> list[str]:
  from sklearn import metrics as sk_metrics  # scikit-learn loads for the runs that draw with it
  predicted = logits.argmax(-1)
  confusion = sk_metrics.confusion_matrix(labels, predicted, labels=range(logits.shape[-1]))
  fig = plots.figure(figsize=(6, 5.5))
  ax = fig.subplots()
  ax.imshow(np.log1p(confusion), cmap="Blues")
  for (true, guess), count in np.ndenumerate(confusion):
    if count:
      ax.text(guess, true, str(count), ha="center", va="center", fontsize=7,
              color="white" if true == guess else "black")
  ax.set_xticks(range(logits.shape[-1]))
  ax.set_yticks(range(logits.shape[-1]))
  ax.set_xlabel("Predicted digit")
  ax.set_ylabel("True digit")
  ax.set_title(f"Test confusion matrix ({(predicted == labels).mean():.2%} correct)")
  _save(fig, workdir / "confusion.png")

  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  loss = -log_probs[np.arange(len(labels)), labels]
  wrong = np.flatnonzero(predicted != labels)
  worst = wrong[np.argsort(-loss[wrong], kind="stable")][:16]
  fig = plots.figure(figsize=(6, 6.6))
  axes = fig.subplots(4, 4)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, index in zip(axes.ravel(), worst):
    ax.imshow(images[index, ..., 0], cmap="gray_r")
    ax.set_title(f"true {labels[index]}, said {predicted[index]}\n({np.exp(log_probs[index, predicted[index]]):.0%})",
                 fontsize=8)
  fig.suptitle(f"The {len(worst)} most confidently wrong of {len(wrong)} misclassified test digits", fontsize=9)
  _save(fig, workdir / "worst.png")
  return ["confusion.png", "worst.png"]


def roc(labels: np.ndarray, logits: np.ndarray, workdir: pathlib.Path) -> list[str]:
  from sklearn import metrics as sk_metrics
  labels, logits = labels.reshape(-1), logits.reshape(-1)
  false_positive, true_positive, _ = sk_metrics.roc_curve(labels, logits)
  fig = plots.figure(figsize=(5, 5))
  ax = fig.subplots()
  ax.plot(false_positive, true_positive, label=f"model (AUC {sk_metrics.roc_auc_score(labels, logits):.3f})")
  ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
  ax.set_xlabel("False positive rate")
  ax.set_ylabel("True positive rate")
  ax.set_title("Test ROC curve")
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  _save(fig, workdir / "roc.png")
  return ["roc.png"]


def forecast(dataset, outputs: np.ndarray, workdir: pathlib.Path) -> list[str]:
  inputs, targets = dataset.splits["test"]
  times = dataset.target_times.get("test", np.arange(len(targets)))
  decode = lambda values: dataset.decode_outputs(np.asarray(values).reshape(-1, 1)).ravel()  # noqa: E731
  fig = plots.figure(figsize=(8, 4))
  ax = fig.subplots()
  ax.plot(times, decode(targets), color="black", label="actual")
  ax.plot(times, decode(outputs), label="model's forecast")
  ax.plot(times, decode(inputs[:, -1, 0]), linestyle=":", color="gray", label='naive: "next = last"')
  ax.set_xlabel(dataset.target_times.get("name", "step"))
  ax.set_ylabel(f"{dataset.target_name} ({dataset.target_unit})" if dataset.target_unit else dataset.target_name)
  ax.set_title("Test split: one step ahead")
  ax.legend()
  ax.grid(alpha=0.3)
  _save(fig, workdir / "forecast.png")
  return ["forecast.png"]


HOUSE_AGES = (2, 10, 20)


def _house_sizes(table: np.ndarray) -> np.ndarray:
  return np.linspace(table[:, 0].min() - 10, table[:, 0].max() + 10, 60)


def house_prices(curves: dict, workdir: pathlib.Path) -> list[str]:
  """`curves`: age -> predicted prices at `_house_sizes`, from `model_outputs`."""
  from nn_jax.data import house_prices as table_module  # the raw table, in the user's units
  table = table_module.read_table()
  fig = plots.figure(figsize=(7, 4.5))
  ax = fig.subplots()
  from matplotlib import colormaps
  colors = colormaps["viridis"](np.linspace(0, 0.85, len(curves)))
  for (age, prices), color in zip(curves.items(), colors):
    ax.plot(_house_sizes(table), prices, color=color, label=f"model, {age} years old")
  points = ax.scatter(table[:, 0], table[:, 2], c=table[:, 1], cmap="viridis", vmin=min(curves),
                      vmax=max(curves) * 1.15, edgecolors="black", zorder=3, label="the article's 20 houses")
  fig.colorbar(points, ax=ax, label="age (years)")
  ax.set_xlabel("Size (m²)")
  ax.set_ylabel("Price (t€)")
  ax.set_title("Predicted price by size")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  _save(fig, workdir / "price_by_size.png")
  return ["price_by_size.png"]


def model_outputs(dataset, evaluator, variables) -> dict:
  """What the pictures need from the model. Computing it is collective in a multi-host run, so every
  process calls this; only the first draws."""
  if dataset.name == "house_prices":
    from nn_jax.data import house_prices as table_module
    sizes = _house_sizes(table_module.read_table())
    return {"curves": {age: np.asarray(evaluator.predict_values(variables, np.stack(
        [sizes, np.full_like(sizes, age)], axis=1))).ravel() for age in HOUSE_AGES}}
  if "test" in dataset.splits:
    return {"test_outputs": evaluator.split_outputs(variables, "test")}
  return {}


def draw(workdir: pathlib.Path, dataset, outputs: dict, kind: str) -> list[str]:
  """The pictures for this kind of run (`kind`: the task's, regression, binary or multiclass), from
  `model_outputs`, chosen by what the dataset holds, so a dataset of one's own gets them too; returns
  their file names."""
  test_outputs = outputs.get("test_outputs")
  if "curves" in outputs:
    return house_prices(outputs["curves"], workdir)
  if test_outputs is None:
    return []
  if kind == "multiclass" and dataset.splits["test"][0].ndim == 4:  # images: (count, height, width, channels)
    return digits(*dataset.splits["test"], test_outputs, workdir)
  if kind == "binary":
    return roc(dataset.splits["test"][1], test_outputs, workdir)
  if dataset.target_times:
    return forecast(dataset, test_outputs, workdir)
  return []
