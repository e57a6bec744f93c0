"""MNIST through TFDS without TensorFlow: mock data, the shared copy, and preparing from the .gz files."""

import contextlib
import functools
import gzip
import http.server
import importlib.resources
import importlib.util
import shutil
import threading

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import SHARED_GZ, SHARED_TFDS, needs_shared_gz, needs_shared_tfds

from nn_jax.common.errors import UserError
from nn_jax.data import mnist, mnist_files


def test_mock_data_loads_scaled_images_and_int_labels(tmp_path):
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = mnist.load(data_dir=str(tmp_path))
  images, labels = dataset.splits["train"]
  assert images.shape == (20, 28, 28, 1) and images.dtype == np.float32
  assert 0.0 <= images.min() and images.max() <= 1.0
  assert labels.dtype == np.int32 and set(labels) <= set(range(10))


@needs_shared_tfds
def test_shared_copy_has_all_of_mnist(mnist_cache):
  dataset = mnist.load(data_dir=str(SHARED_TFDS), test_examples=0, train_examples=100)
  assert len(dataset.splits["test"][0]) == 10_000 and len(dataset.splits["train"][0]) == 100


@needs_shared_tfds
def test_mock_and_real_records_in_one_cache_folder_each_see_their_own(tmp_path, mnist_cache):
  def train_images(cache_dir, mock=False):
    with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE) if mock else (
        contextlib.nullcontext()):
      return len(mnist.load(data_dir=str(SHARED_TFDS), cache_dir=str(cache_dir)).splits["train"][0])

  assert train_images(tmp_path / "fresh", mock=True) == 64
  assert not (tmp_path / "fresh").exists()  # made-up records are never cached, so no run can read them as MNIST
  assert train_images(mnist_cache) == 60_000
  entries = sorted(mnist_cache.iterdir())
  assert train_images(mnist_cache, mock=True) == 64  # a cached real entry does not stand in for mock records
  assert sorted(mnist_cache.iterdir()) == entries
  assert train_images(mnist_cache) == 60_000


def _write_idx(path, array):
  """An IDX file as MNIST's are: magic (0, 0, 8 for uint8, the rank), one big-endian uint32 per dimension, data."""
  header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _prepare_tiny(data_dir, seed):
  """A prepared nn_jax_mnist of a few random digits in data_dir; its folder."""
  rng = np.random.default_rng(seed)
  gz_dir = data_dir / "gz"
  gz_dir.mkdir(parents=True)
  for prefix, count in (("train", 6), ("t10k", 4)):
    _write_idx(gz_dir / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
    _write_idx(gz_dir / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
  mnist_files.prepare(data_dir, gz_dir)
  return data_dir / "nn_jax_mnist" / "1.0.0"


def test_records_replaced_in_place_are_decoded_again(tmp_path):
  first, second = _prepare_tiny(tmp_path / "first", seed=0), _prepare_tiny(tmp_path / "second", seed=1)
  cache = str(tmp_path / "cache")
  before = mnist.load(data_dir=str(tmp_path / "first"), cache_dir=cache).splits["train"][0]
  for shard in second.glob("nn_jax_mnist-*.array_record-*"):  # same names, same dataset_info.json
    shutil.copyfile(shard, first / shard.name)
  after = mnist.load(data_dir=str(tmp_path / "first"), cache_dir=cache).splits["train"][0]
  np.testing.assert_array_equal(after, mnist.load(data_dir=str(tmp_path / "second"), cache_dir="none").splits["train"][0])
  assert not np.array_equal(before, after)


def test_offline_without_data_says_where_it_looked_and_how_to_supply_it(tmp_path):
  with pytest.raises(UserError) as error:
    mnist.load(data_dir=str(tmp_path), mirror_url="")
  message = str(error.value)
  assert str(tmp_path / "mnist" / "3.0.1") in message and str(tmp_path / "downloads" / "manual") in message
  assert "TFDS_DATA_DIR" in message and "manual_dir" in message and "\n" not in message


def test_unreachable_mirror_is_the_same_clear_error(tmp_path):
  with pytest.raises(UserError, match="could not download http://127.0.0.1:9/"):
    mnist.load(data_dir=str(tmp_path), mirror_url="http://127.0.0.1:9/")
  assert not list((tmp_path / "downloads" / "nn_jax_mnist").glob("*"))


@contextlib.contextmanager
def serve(directory):
  """An HTTP server on 127.0.0.1 serving `directory`, for as long as the block runs."""
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
  handler.log_message = lambda *args: None
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_port}/"
  finally:
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@needs_shared_gz
def test_download_prepare_and_read_without_tensorflow(tmp_path):
  data_dir = tmp_path / "tfds"
  with serve(SHARED_GZ) as url:
    dataset = mnist.load(data_dir=str(data_dir), mirror_url=url, train_examples=500)
  assert importlib.util.find_spec("tensorflow") is None  # so preparing it needed no TensorFlow
  assert (data_dir / "nn_jax_mnist" / "1.0.0" / "dataset_info.json").is_file()
  assert not list((data_dir / "downloads" / "nn_jax_mnist").glob("*.part"))
  images, labels = dataset.splits["test"]
  assert images.shape == (10_000, 28, 28, 1) and len(dataset.splits["train"][0]) == 500
  # The same pixels as the official files: the first test digit is a 7.
  official = mnist_files.read_idx(SHARED_GZ / "t10k-images-idx3-ubyte.gz")
  np.testing.assert_array_equal((images[:, :, :, 0] * 255).round().astype(np.uint8), official)
  assert labels[0] == 7
  # Prepared once: a second load reads it back offline.
  again = mnist.load(data_dir=str(data_dir), mirror_url="", test_examples=10)
  np.testing.assert_array_equal(again.splits["test"][0], images[:10])


@needs_shared_gz
def test_corrupt_download_is_rejected_and_nothing_half_written_is_kept(tmp_path):
  mirror = tmp_path / "mirror"
  mirror.mkdir()
  for path in SHARED_GZ.glob("*.gz"):
    shutil.copy(path, mirror / path.name)
  truncated = mirror / "train-labels-idx1-ubyte.gz"
  truncated.write_bytes(truncated.read_bytes()[:1000])
  data_dir = tmp_path / "tfds"
  with serve(mirror) as url, pytest.raises(UserError, match="train-labels-idx1-ubyte.gz is corrupt or truncated"):
    mnist.load(data_dir=str(data_dir), mirror_url=url)
  downloads = data_dir / "downloads" / "nn_jax_mnist"
  assert not (downloads / "train-labels-idx1-ubyte.gz").exists()
  assert not list(downloads.glob("*.part"))
  assert not (data_dir / "nn_jax_mnist").exists()


@needs_shared_gz
def test_corrupt_file_in_the_manual_dir_is_named(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(SHARED_GZ, manual)
  (manual / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
  with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz is corrupt or truncated"):
    mnist.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(manual), mirror_url="")


def test_checksums_are_the_ones_tfds_registers():
  registered = importlib.resources.files("tensorflow_datasets").joinpath("url_checksums/mnist.txt").read_text()
  for name, sha256 in mnist_files.OFFICIAL_FILES.items():
    assert f"{sha256}\t{name}" in registered


@pytest.mark.slow
@needs_shared_tfds
@pytest.mark.parametrize("damaged", ["mnist-train.array_record*", "dataset_info.json"])
def test_a_damaged_prepared_copy_is_one_line_naming_it_and_the_remedy(tmp_path, damaged):
  shutil.copytree(SHARED_TFDS / "mnist", tmp_path / "mnist")
  path = next((tmp_path / "mnist" / "3.0.1").glob(damaged))
  path.chmod(0o644)
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  with pytest.raises(UserError) as error:
    mnist.load(data_dir=str(tmp_path), cache_dir="none")
  message = str(error.value)
  assert str(tmp_path / "mnist" / "3.0.1") in message and "delete that folder" in message and "\n" not in message
