"""Benchmark: 8 seeds trained as one vmapped program vs one after another (a script, not a test).

  python -m benchmarks.seeds [--seeds 8]

For the house MLP (2000 full-batch epochs) and the LSTM (sunspots, 30 epochs
of batch 32) it prints the wall time of each way, with compilation and after
it (the runs' own train_seconds), and the ratios. Both ways write ordinary run
directories (metrics, checkpoints, summaries) into a temporary folder.
"""

import argparse
import contextlib
import io
import logging
import pathlib
import tempfile
import time

from nn_jax import config as config_lib
from nn_jax.training import trainer

CASES = {
    "house_mlp": ("experiments/house_mlp.py", {"checkpoint_every_epochs": 2000, "predict_examples": ()}),
    "lstm": ("experiments/recurrent_series.py:lstm", {"checkpoint_every_epochs": 30}),
}


def _configs(spec: str, overrides: dict, seeds: int):
  return [config_lib.load(spec, {**overrides, "progress": False, "seed": seed}) for seed in range(seeds)]


def measure(spec: str, overrides: dict, seeds: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
    root = pathlib.Path(tmp)
    start = time.perf_counter()
    summaries = trainer.train(_configs(spec, overrides, seeds), [root / "v" / str(s) for s in range(seeds)])
    vectorized_total = time.perf_counter() - start
    vectorized_train = sum(s["train_seconds"] for s in summaries)
    start = time.perf_counter()
    sequential = [trainer.train_and_evaluate(c, root / "s" / str(c.seed)) for c in _configs(spec, overrides, seeds)]
    sequential_total = time.perf_counter() - start
    sequential_train = sum(s["train_seconds"] for s in sequential)
  return {"vectorized_total": vectorized_total, "sequential_total": sequential_total,
          "vectorized_train": vectorized_train, "sequential_train": sequential_train}


def main() -> None:
  logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes would bury the table
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=8)
  args = parser.parse_args()
  print(f"{args.seeds} seeds | sequential s (with compile / training only) | vectorized s (with compile / "
        f"training only) | speed-up with compile | speed-up training only")
  for name, (spec, overrides) in CASES.items():
    m = measure(spec, overrides, args.seeds)
    print(f"{name:9s} | {m['sequential_total']:7.2f} / {m['sequential_train']:7.2f} | "
          f"{m['vectorized_total']:7.2f} / {m['vectorized_train']:7.2f} | "
          f"{m['sequential_total'] / m['vectorized_total']:5.2f}x | "
          f"{m['sequential_train'] / m['vectorized_train']:5.2f}x", flush=True)


if __name__ == "__main__":
  main()
