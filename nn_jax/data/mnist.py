"""MNIST through tensorflow-datasets, read with `tfds.data_source` (no TensorFlow at run time).

Where the data is looked for, in order, under the data dir
(`dataset.data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets):
  1. `mnist/3.0.1/`, prepared by TFDS's own builder;
  2. `nn_jax_mnist/1.0.0/`, prepared by this project without TensorFlow;
  3. otherwise it prepares (2) from the four official .gz files, taken from the
     manual dir (`dataset.manual_dir`, else DATA_DIR/downloads/manual) or
     downloaded from `dataset.mirror_url`; every file is checked by sha256.

Decoding the 70,000 records takes seconds, so the decoded uint8 arrays are
cached once (`decoded_cache.py`), keyed by the record files they were decoded
from; records served by a stand-in (tfds.testing.mock_data) are never cached.
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_data_source

from nn_jax.common.errors import UserError
from nn_jax.data import decoded_cache, mnist_files
from nn_jax.data.dataset import Dataset

SPLITS = ("train", "test")
DECODER_VERSION = "1"  # names the cache entries `_decode` writes: change it whenever its output changes


def default_data_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _open(name: str, data_dir: pathlib.Path):
  return {split: tfds.data_source(name, split=split, data_dir=str(data_dir), download=False) for split in SPLITS}


def _is_prepared(name: str, version: str, data_dir: pathlib.Path) -> bool:
  return (data_dir / name / version / "dataset_info.json").is_file()


def _decode(source) -> tuple[np.ndarray, np.ndarray]:
  """Every record of a split: uint8 images and int32 labels."""
  try:
    records = source.__getitems__(list(range(len(source))))  # one batched read: ~6x faster than per record
  except TypeError:  # tfds.testing.mock_data's source has no batched read
    records = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
  labels = np.asarray([int(np.asarray(r["label"])) for r in records], dtype=np.int32)
  return images, labels


def _record_files(sources) -> dict[str, list[pathlib.Path]] | None:
  """{split: the array_record files its source reads}, or None when a stand-in serves the records.

  tfds.testing.mock_data keeps TFDS's data source but swaps its reader for one that
  makes records up, so the reader, not the folder, says whether files are read.
  """
  files = {}
  for split, source in sources.items():
    if not isinstance(getattr(source, "data_source", None), array_record_data_source.ArrayRecordDataSource):
      return None
    files[split] = [pathlib.Path(str(path)) for path in source.dataset_info.splits[source.split].filepaths]
  return files


def _scaled(images: np.ndarray, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
  count = len(images) if limit <= 0 else min(limit, len(images))
  return np.divide(images[:count], np.float32(255), dtype=np.float32), labels[:count]  # one pass, = x / 255


def _prepared(data_dir: pathlib.Path) -> pathlib.Path | None:
  """The folder of the prepared copy that will be read, if there is one on disk."""
  for name, version in (("mnist", "3.0.1"), ("nn_jax_mnist", "1.0.0")):
    if _is_prepared(name, version, data_dir):
      return data_dir / name / version
  return None


def _sources(data_dir: pathlib.Path, manual_dir: pathlib.Path, mirror_url: str):
  for name, version in (("mnist", "3.0.1"), ("nn_jax_mnist", "1.0.0")):
    if _is_prepared(name, version, data_dir):
      try:
        return _open(name, data_dir)
      except Exception as e:  # tfds reports a damaged dataset_info.json as a protobuf ParseError, and more
        raise UserError(f"MNIST's prepared copy in {data_dir / name / version} cannot be opened "
                        f"({type(e).__name__}: {str(e).splitlines()[0][-160:]}); its dataset_info.json or "
                        f"features.json is damaged: delete that folder to prepare it again, or set TFDS_DATA_DIR "
                        f"to an intact copy", exit_code=1) from e
  try:  # tfds.testing.mock_data serves `mnist` with no files at all
    return _open("mnist", data_dir)
  except (NotImplementedError, RuntimeError, tfds.core.DatasetNotFoundError, FileNotFoundError):
    pass
  gz_dir = manual_dir
  if not mnist_files.verified_files_in(manual_dir):
    if not mirror_url:
      raise _missing(data_dir, manual_dir, mirror_url, "downloading is off (dataset.mirror_url is empty)")
    gz_dir = data_dir / "downloads" / "nn_jax_mnist"
    try:
      mnist_files.download(mirror_url, gz_dir)
    except ConnectionError as e:
      raise _missing(data_dir, manual_dir, mirror_url, str(e)) from e
  print(f"Preparing MNIST into {data_dir}/nn_jax_mnist from {gz_dir} (no TensorFlow needed)...", flush=True)
  mnist_files.prepare(data_dir, gz_dir)
  return _open("nn_jax_mnist", data_dir)


def _missing(data_dir, manual_dir, mirror_url, reason) -> UserError:
  return UserError(
      f"MNIST not found: looked for {data_dir}/mnist/3.0.1 and {data_dir}/nn_jax_mnist/1.0.0, and for the "
      f"four .gz files in {manual_dir}; {reason}. Supply it either way: set TFDS_DATA_DIR to a folder with a "
      f"prepared mnist/3.0.1, or put the official *-ubyte.gz files in {manual_dir} "
      f"(or --config.dataset.manual_dir=DIR) to prepare it offline.", exit_code=1)


def load(data_dir: str = "", manual_dir: str = "", mirror_url: str = "", train_examples: int = 0,
         test_examples: int = 0, cache_dir: str = "") -> Dataset:
  """Loads both splits into memory, images scaled to [0, 1]; `*_examples` > 0 keeps a prefix.
  `cache_dir`: where decoded arrays are cached ("": $NN_JAX_CACHE, else ~/.cache/nn_jax; "none": off)."""
  root = pathlib.Path(data_dir).expanduser() if data_dir else default_data_dir()
  manual = pathlib.Path(manual_dir).expanduser() if manual_dir else root / "downloads" / "manual"
  limits = {"train": train_examples, "test": test_examples}
  sources = _sources(root, manual, mirror_url)
  try:
    record_files = _record_files(sources) if cache_dir != "none" else None
    cache = decoded_cache.DecodedCache(cache_dir, "mnist", record_files, DECODER_VERSION) if record_files else None
    decoded = cache.read() if cache else None
    if decoded is None:
      decoded = {split: _decode(sources[split]) for split in SPLITS}
      if cache:
        cache.write(decoded)
  except (RuntimeError, OSError, ValueError) as e:  # array_record and PIL say "corrupt" many ways
    where = _prepared(root) or root
    raise UserError(f"MNIST's prepared copy in {where} cannot be read ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:120]}); delete that folder to prepare it again, or set "
                    f"TFDS_DATA_DIR to an intact copy", exit_code=1) from e
  splits = {split: _scaled(*decoded[split], limits[split]) for split in SPLITS}
  return Dataset(name="mnist", splits=splits, target_name="digit")
