"""What a config's per-backend choices become on this machine: decided once per run, recorded in summary.json.

A config may leave these to the backend ("auto" or 0); the measurements behind
each choice are in docs/performance.md:
  model.conv_impl       CNN blocks: the fused CPU op on CPU, XLA's convolution elsewhere
  model.recurrence      the hand-written backward pass (custom_vjp) on CPU; elsewhere LSTM: optimized,
                        plain RNN and GRU: scan
  microbatch_size       the fused CNN on CPU: 50 (its conv patches then stay in cache); else the
                        whole batch
  data_on_device        the training split uploaded once and batches gathered on the device, when
                        one process runs and the data takes at most DEVICE_DATA_FRACTION of the
                        device's free memory (on CPU: of the free host memory)
  steps_per_dispatch    train steps per compiled call (STEPS_PER_DISPATCH per backend; full-batch
                        training: every epoch up to the next log or checkpoint epoch; on CPU, 1 for
                        models on XLA's convolution, which runs ~15x slower inside a compiled loop)
Everything downstream (the model, the train step, the loop) sees only the resolved config.
"""

import os

import jax
import ml_collections

from nn_jax.models import cnn, rnn

# The fused CNN step on the 2-core CPU at batch 200 (docs/performance.md): whole batch 39 ms, microbatches
# of 100, 50 and 25: 24-26, 26-30 and 26-27 ms; 50 compiles faster and uses less memory than 100.
FUSED_CNN_MICROBATCH = 50


DEVICE_DATA_FRACTION = 0.5
STEPS_PER_DISPATCH = {"cpu": 10, "gpu": 100, "tpu": 100}


def resolve(config: ml_collections.ConfigDict, backend: str | None = None, data_bytes: int = 0,
            full_batch: bool = False) -> ml_collections.ConfigDict:
  """A copy of `config` with every per-backend choice made for `backend` (default: JAX's);
  `data_bytes` is the training split's size, for `data_on_device`; a `full_batch` run dispatches
  all the epochs up to the next log or checkpoint epoch at once."""
  backend = backend or jax.default_backend()
  resolved = config.copy_and_resolve_references()
  model = resolved.model
  with resolved.unlocked():
    if "conv_impl" in model:
      model.conv_impl = cnn.resolve_conv_impl(model.conv_impl, model.get("batch_norm", False), backend)
    if "recurrence" in model:
      model.recurrence = rnn.resolve_recurrence(model.recurrence, model.cell, backend)
    if not resolved.get("microbatch_size") and resolved.batch_size:
      fused = model.get("conv_impl") == "fused"
      resolved.microbatch_size = microbatch_size(resolved.batch_size, FUSED_CNN_MICROBATCH if fused else 0)
    if resolved.get("data_on_device", "auto") == "auto":
      resolved.data_on_device = "true" if jax.process_count() == 1 and data_bytes <= free_memory() * DEVICE_DATA_FRACTION \
          else "false"
    if not resolved.get("steps_per_dispatch"):
      resolved.steps_per_dispatch = (resolved.num_epochs if full_batch else 1 if _slow_in_loops(resolved, backend)
                                     else STEPS_PER_DISPATCH.get(backend, 1))
  return resolved


def _slow_in_loops(config, backend: str) -> bool:
  """XLA:CPU's own convolution runs ~15x slower inside a compiled loop than alone (docs/performance.md):
  such a model takes one step per dispatch, and its gradient whole batches, on CPU."""
  return backend == "cpu" and config.model.get("conv_impl") == "xla"


def free_memory() -> int:
  """Bytes free on the first device; on CPU, the host's available memory."""
  stats = jax.devices()[0].memory_stats()
  if stats and "bytes_limit" in stats:
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def microbatch_size(batch_size: int, preferred: int) -> int:
  """The divisor of `batch_size` nearest below batch/round(batch/preferred); 0 (preferred): the whole batch."""
  if not preferred:
    return batch_size
  count = max(1, round(batch_size / preferred))
  while batch_size % count:
    count -= 1
  return batch_size // count


def choices(config: ml_collections.ConfigDict, resolved: ml_collections.ConfigDict) -> dict:
  """{key: value} of what `resolve` decided, for summary.json, plus the device it ran on."""
  keys = [k for k in ("model.conv_impl", "model.recurrence", "microbatch_size", "data_on_device",
                      "steps_per_dispatch") if _get(config, k) is not None]
  decided = {key: _get(resolved, key) for key in keys}
  device = jax.devices()[0]
  decided.update(backend=jax.default_backend(), device_kind=device.device_kind, device_count=jax.device_count())
  return decided


def _get(config, key: str):
  node = config
  for part in key.split("."):
    if part not in node:
      return None
    node = node[part]
  return node
