"""PyTorch eager, the article's CNN: a same-run reference for `make bench` where torch is installed.

The same architecture (Conv 32, pool, Conv 64, pool, Dense 128, Dense 10; valid
padding), Adam 1e-3, batch 200, float32, on CUDA when available (else CPU),
with data already on the device, timed with the device synchronized: what a
plain PyTorch training loop gets, for comparison with the JAX trainer's step.
"""

import time

import numpy as np


def measure(repeats: int, steps: int = 50) -> dict:
  try:
    import torch
  except ImportError:
    return {"skipped": "torch is not installed"}
  from torch import nn
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  model = nn.Sequential(
      nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  loss_fn = nn.CrossEntropyLoss()
  rng = np.random.default_rng(0)
  x = torch.tensor(rng.random((200, 1, 28, 28), dtype=np.float32), device=device)
  y = torch.tensor(rng.integers(0, 10, 200), device=device)
  x_eval = torch.tensor(rng.random((1000, 1, 28, 28), dtype=np.float32), device=device)
  synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def train_steps(count):
    for _ in range(count):
      optimizer.zero_grad(set_to_none=True)
      loss_fn(model(x), y).backward()
      optimizer.step()
    synchronize()

  def evaluate(count):
    with torch.no_grad():
      for _ in range(count):
        model(x_eval)
    synchronize()

  train_steps(10)
  evaluate(3)
  train_times, eval_times = [], []
  for _ in range(repeats):
    start = time.perf_counter()
    train_steps(steps)
    train_times.append((time.perf_counter() - start) / steps)
    start = time.perf_counter()
    evaluate(5)
    eval_times.append((time.perf_counter() - start) / 5)
  return {"train_images_per_second": 200 / float(np.median(train_times)),
          "eval_images_per_second": 1000 / float(np.median(eval_times)),
          "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
