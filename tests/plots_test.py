"""Headless plots of a run and of a sweep."""

import numpy as np

from nn_jax.workdir import plots


def _is_png(path):
  return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_a_run_s_learning_curve_uses_the_task_s_metric_and_label(tmp_path):
  rows = [{"epoch": e, "split": "train", "loss": 1.0 / e, "mse": 2.0 / e} for e in range(1, 11)]
  plots.plot_run(rows, tmp_path, "house", ("mse", "Loss (MSE)"))
  assert _is_png(tmp_path / "loss.png")
  assert not (tmp_path / "accuracy.png").exists()  # no accuracy in these rows


def test_sweep_plots(tmp_path):
  plots.plot_bands({"a": ([1, 2, 3], np.ones((2, 3)))}, "test/rmse", tmp_path / "curves.png")
  plots.plot_bars({"a": np.array([1.0, 2.0]), "b": np.array([3.0])}, "test/rmse", tmp_path / "final.png")
  assert _is_png(tmp_path / "curves.png") and _is_png(tmp_path / "final.png")
