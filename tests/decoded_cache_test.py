"""The decoded-data cache: named by the records it holds, used when intact, rebuilt when not, never trusted blindly."""

import numpy as np
import pytest

from conftest import SHARED_TFDS, needs_shared_tfds
from nn_jax.data import decoded_cache, mnist


@pytest.fixture
def record_files(tmp_path):
  """{split: [files]}, standing in for a prepared copy's shards."""
  folder = tmp_path / "data" / "mnist" / "3.0.1"
  folder.mkdir(parents=True)
  files = {}
  for split in ("train", "test"):
    files[split] = [folder / f"mnist-{split}.array_record-00000-of-00001"]
    files[split][0].write_bytes(split.encode() * 100)
  return files


def _cache(tmp_path, record_files, decoder_version="1"):
  return decoded_cache.DecodedCache(str(tmp_path / "cache"), "mnist", record_files, decoder_version)


def _decoded():
  rng = np.random.default_rng(0)
  return {"train": (rng.integers(0, 255, (5, 4, 4, 1), dtype=np.uint8), np.arange(5, dtype=np.int32)),
          "test": (rng.integers(0, 255, (2, 4, 4, 1), dtype=np.uint8), np.arange(2, dtype=np.int32))}


def test_round_trip(tmp_path, record_files):
  cache = _cache(tmp_path, record_files)
  assert cache.read() is None
  cache.write(_decoded())
  for split, (inputs, targets) in cache.read().items():
    np.testing.assert_array_equal(inputs, _decoded()[split][0])
    np.testing.assert_array_equal(targets, _decoded()[split][1])


def test_a_corrupt_cache_is_not_trusted(tmp_path, record_files):
  cache = _cache(tmp_path, record_files)
  cache.write(_decoded())
  data = bytearray(cache.path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  cache.path.write_bytes(bytes(data))
  assert cache.read() is None
  cache.path.write_bytes(bytes(data[:100]))  # truncated
  assert cache.read() is None


def test_an_entry_is_named_by_the_records_it_was_decoded_from(tmp_path, record_files):
  entry = _cache(tmp_path, record_files)
  entry.write(_decoded())
  assert _cache(tmp_path, record_files).read() is not None  # the same records: found again

  train = record_files["train"][0]
  original = train.read_bytes()
  train.write_bytes(b"x" + original[1:])  # replaced in place: same name, same size
  assert _cache(tmp_path, record_files).read() is None
  train.write_bytes(original)
  renamed = train.rename(train.with_name("mnist-train.array_record-00000-of-00002"))
  assert _cache(tmp_path, {**record_files, "train": [renamed]}).read() is None
  renamed.rename(train)
  assert _cache(tmp_path, record_files).read() is not None

  assert _cache(tmp_path, {"test": record_files["train"], "train": record_files["test"]}).path != entry.path
  assert _cache(tmp_path, {"train": record_files["train"]}).path != entry.path
  assert _cache(tmp_path, record_files, decoder_version="2").path != entry.path


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
