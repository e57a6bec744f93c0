"""What a config's per-backend choices become on this machine: decided once per run, recorded in summary.json.

A config may leave these to the backend ("auto" or 0); the measurements behind
each choice are in docs/performance.md:
  model.<field>         the model's own choices (its `backend_choices`, nn_jax/models/__init__.py):
                        the CNN's blocks (the fused CPU op on CPU, XLA's convolution elsewhere), the
                        recurrent net's loop (the hand-written backward pass on CPU; elsewhere LSTM:
                        optimized, plain RNN and GRU: scan)
  microbatch_size       the model's preference (the fused CNN on CPU: 50, its conv patches then stay
                        in cache); else the whole batch
  data_on_device        the training split uploaded once and batches gathered on the device, when
                        one process runs and the data takes at most DEVICE_DATA_FRACTION of the
                        device's free memory (on CPU: of the free host memory)
  steps_per_dispatch    train steps per compiled call (STEPS_PER_DISPATCH per backend; full-batch
                        training: every epoch up to the next log or checkpoint epoch; 1 for a model
                        that says it runs slowly inside compiled loops on this backend)
Everything downstream (the model, the train step, the loop) sees only the resolved config; a model
built directly (tests, notebooks) resolves its own "auto" fields the same way.
"""

import os

import jax
import ml_collections

from nn_jax import models

DEVICE_DATA_FRACTION = 0.5
STEPS_PER_DISPATCH = {"cpu": 10, "gpu": 100, "tpu": 100}


def resolve(config: ml_collections.ConfigDict, backend: str | None = None, data_bytes: int = 0,
            full_batch: bool = False) -> ml_collections.ConfigDict:
  """A copy of `config` with every per-backend choice made for `backend` (default: JAX's);
  `data_bytes` is the training split's size, for `data_on_device`; a `full_batch` run dispatches
  all the epochs up to the next log or checkpoint epoch at once."""
  backend = backend or jax.default_backend()
  resolved = config.copy_and_resolve_references()
  model_fields, hints = models.backend_choices(resolved.model, backend)
  with resolved.unlocked():
    resolved.model.update(model_fields)
    if not resolved.get("microbatch_size") and resolved.batch_size:
      resolved.microbatch_size = microbatch_size(resolved.batch_size, hints.get("microbatch_size", 0))
    if resolved.get("data_on_device", "auto") == "auto":
      resolved.data_on_device = "true" if jax.process_count() == 1 and data_bytes <= free_memory() * DEVICE_DATA_FRACTION \
          else "false"
    if not resolved.get("steps_per_dispatch"):
      resolved.steps_per_dispatch = (resolved.num_epochs if full_batch else hints.get("steps_per_dispatch")
                                     or STEPS_PER_DISPATCH.get(backend, 1))
  return resolved


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
  model_keys = [f"model.{field}" for field in models.backend_choices(config.model, jax.default_backend())[0]]
  keys = [k for k in (*model_keys, "microbatch_size", "data_on_device", "steps_per_dispatch")
          if _get(resolved, k) is not None]
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
