"""Getting MNIST without TensorFlow: the four official IDX files, verified, and a TFDS builder over them.

TFDS's own `mnist` builder needs TensorFlow to prepare (its Image feature
encodes PNGs with TF). `NnJaxMnist` stores the same pixels as a uint8 Tensor
feature in array_record files, which TFDS writes and reads with no TensorFlow.
"""

import gzip
import hashlib
import os
import pathlib
import urllib.error
import urllib.request

import numpy as np
import tensorflow_datasets as tfds

from nn_jax.common.errors import UserError

# name -> sha256, as TFDS registers them in tensorflow_datasets/url_checksums/mnist.txt.
OFFICIAL_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def sha256_of(path: pathlib.Path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def verified_files_in(directory: pathlib.Path) -> bool:
  """True when all four files are there and intact; raises on a corrupt one."""
  paths = [directory / name for name in OFFICIAL_FILES]
  if not all(p.is_file() for p in paths):
    return False
  for path in paths:
    actual = sha256_of(path)
    if actual != OFFICIAL_FILES[path.name]:
      raise UserError(f"{path} is corrupt or truncated (sha256 {actual[:12]}..., expected "
                      f"{OFFICIAL_FILES[path.name][:12]}...); replace it with the official file")
  return True


def download(mirror_url: str, directory: pathlib.Path) -> None:
  """Downloads the four files into `directory`, each verified before it is kept.

  A file is written to `NAME.part` and renamed only once its checksum matches,
  so an interrupted or corrupt download never leaves a file a later run reads.
  """
  directory.mkdir(parents=True, exist_ok=True)
  for name, expected in OFFICIAL_FILES.items():
    target = directory / name
    if target.is_file() and sha256_of(target) == expected:
      continue
    url = mirror_url.rstrip("/") + "/" + name
    partial = directory / (name + ".part")
    digest = hashlib.sha256()
    try:
      with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        for block in iter(lambda: response.read(1 << 20), b""):
          digest.update(block)
          out.write(block)
    except (urllib.error.URLError, OSError) as e:
      partial.unlink(missing_ok=True)
      raise ConnectionError(f"could not download {url}: {e}") from e
    if digest.hexdigest() != expected:
      partial.unlink(missing_ok=True)
      raise UserError(f"downloaded {url} is corrupt or truncated (sha256 {digest.hexdigest()[:12]}..., "
                      f"expected {expected[:12]}...); nothing was kept; check the mirror and retry")
    os.replace(partial, target)


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Parses one gzipped IDX file (big-endian header: magic, then one uint32 per dimension)."""
  with gzip.open(path, "rb") as f:
    raw = f.read()
  num_dims = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(num_dims))
  return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * num_dims).reshape(shape)


class NnJaxMnist(tfds.core.GeneratorBasedBuilder):
  """MNIST prepared from the official IDX files in the manual dir, with no TensorFlow."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Place the four official MNIST files ({', '.join(OFFICIAL_FILES)}) in the manual dir."

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,  # keep the official order: record i is the IDX file's image i
        homepage="http://yann.lecun.com/exdb/mnist/",
    )

  def _split_generators(self, dl_manager):
    manual_dir = pathlib.Path(dl_manager.manual_dir)
    return {split: self._generate_examples(manual_dir, prefix) for split, prefix in _SPLIT_PREFIX.items()}

  def _generate_examples(self, manual_dir, prefix):
    images = read_idx(manual_dir / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(manual_dir / f"{prefix}-labels-idx1-ubyte.gz")
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image[..., None], "label": int(label)}


def prepare(data_dir: pathlib.Path, gz_dir: pathlib.Path) -> None:
  """Writes `nn_jax_mnist` into data_dir from verified files in gz_dir.

  TFDS writes into a temporary folder and renames it when complete, so an
  interrupted preparation leaves nothing that `data_source` would read.
  """
  builder = NnJaxMnist(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(gz_dir)))
