"""The decoded-data cache: used when intact, rebuilt when not, never trusted blindly."""

import json

import numpy as np
import pytest

from conftest import SHARED_TFDS, needs_shared_tfds
from nn_jax.data import decoded_cache, mnist


@pytest.fixture
def prepared(tmp_path):
  folder = tmp_path / "data" / "mnist" / "3.0.1"
  folder.mkdir(parents=True)
  (folder / "dataset_info.json").write_text(json.dumps({"version": "3.0.1"}))
  return folder


def _decoded():
  rng = np.random.default_rng(0)
  return {"train": (rng.integers(0, 255, (5, 4, 4, 1), dtype=np.uint8), np.arange(5, dtype=np.int32)),
          "test": (rng.integers(0, 255, (2, 4, 4, 1), dtype=np.uint8), np.arange(2, dtype=np.int32))}


def test_round_trip(tmp_path, prepared):
  cache = decoded_cache.DecodedCache(str(tmp_path / "cache"), prepared, ("train", "test"))
  assert cache.read() is None
  cache.write(_decoded())
  for split, (inputs, targets) in cache.read().items():
    np.testing.assert_array_equal(inputs, _decoded()[split][0])
    np.testing.assert_array_equal(targets, _decoded()[split][1])


def test_a_corrupt_cache_is_not_trusted(tmp_path, prepared):
  cache = decoded_cache.DecodedCache(str(tmp_path / "cache"), prepared, ("train", "test"))
  cache.write(_decoded())
  data = bytearray(cache.path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  cache.path.write_bytes(bytes(data))
  assert cache.read() is None
  cache.path.write_bytes(bytes(data[:100]))  # truncated
  assert cache.read() is None


def test_another_copy_of_the_data_gets_another_cache(tmp_path, prepared):
  first = decoded_cache.DecodedCache(str(tmp_path / "cache"), prepared, ("train",))
  (prepared / "dataset_info.json").write_text(json.dumps({"version": "3.0.1", "files": 2}))
  assert decoded_cache.DecodedCache(str(tmp_path / "cache"), prepared, ("train",)).path != first.path


@pytest.mark.slow
@needs_shared_tfds
def test_mnist_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
  calls = []
  decode = mnist._decode
  monkeypatch.setattr(mnist, "_decode", lambda source: calls.append(1) or decode(source))
  first = mnist.load(data_dir=str(SHARED_TFDS), cache_dir=str(tmp_path), train_examples=100)
  assert len(calls) == 2  # train and test decoded
  second = mnist.load(data_dir=str(SHARED_TFDS), cache_dir=str(tmp_path), train_examples=100)
  assert len(calls) == 2  # nothing decoded again
  for split in ("train", "test"):
    for a, b in zip(first.splits[split], second.splits[split]):
      np.testing.assert_array_equal(a, b)
