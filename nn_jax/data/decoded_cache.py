"""A cache of decoded dataset arrays, so that a run starts in well under a second instead of decoding again.

An entry is named by what it holds: a hash of the record files it was decoded
from (each split's files: name, size and the sha256 of their bytes), the split
names and the decoding code's version. Other records, even in the same folder
under the same names, are another entry; an entry whose records changed is
never found again. Beside each .npz lies the sha256 of its own bytes: an entry
that does not match it (truncated, corrupted, half-written) is ignored and
rebuilt, never trusted. Writes go to a temporary file, renamed into place once
complete.

Only a loader that read the records from those files may write an entry; one
served by a stand-in (tfds.testing.mock_data) has no files to name and caches
nothing.
"""

import hashlib
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np


def default_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("NN_JAX_CACHE") or "~/.cache/nn_jax").expanduser()


def _sha256(path: pathlib.Path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _records_identity(record_files: Mapping[str, Sequence[pathlib.Path]], decoder_version: str) -> str:
  """A digest of every split's record files (names, sizes, bytes) and of the code that decodes them."""
  identity = hashlib.sha256(f"decoder {decoder_version}\n".encode())
  for split, paths in record_files.items():
    for path in paths:
      identity.update(f"{split} {path.name} {path.stat().st_size} {_sha256(path)}\n".encode())
  return identity.hexdigest()


class DecodedCache:
  """Decoded (inputs, targets) of each split of `record_files` ({split: [files]}), for the dataset `name`."""

  def __init__(self, cache_dir: str, name: str, record_files: Mapping[str, Sequence[pathlib.Path]],
               decoder_version: str):
    identity = _records_identity(record_files, decoder_version)
    self.path = (pathlib.Path(cache_dir).expanduser() if cache_dir else default_dir()) / f"{name}-{identity[:20]}.npz"
    self.checksum = self.path.with_suffix(".npz.sha256")
    self.splits = tuple(record_files)

  def read(self) -> dict | None:
    """{split: (inputs, targets)}, or None when there is no intact cache."""
    try:
      if self.checksum.read_text().strip() != _sha256(self.path):
        return None
      with np.load(self.path) as arrays:
        return {split: (arrays[f"{split}_inputs"], arrays[f"{split}_targets"]) for split in self.splits}
    except (OSError, ValueError, KeyError):
      return None

  def write(self, decoded: dict) -> None:
    """Caches `decoded`; a cache folder that cannot be written is skipped (the data was decoded anyway)."""
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      partial = self.path.with_suffix(f".{os.getpid()}.part")
      with open(partial, "wb") as f:
        np.savez(f, **{f"{split}_{kind}": array for split, (inputs, targets) in decoded.items()
                       for kind, array in (("inputs", inputs), ("targets", targets))})
      checksum = _sha256(partial)
      os.replace(partial, self.path)
      self.checksum.write_text(checksum + "\n")
    except OSError:
      pass
