"""A cache of decoded dataset arrays, so that a run starts in well under a second instead of decoding again.

One .npz per prepared dataset copy, named by a hash of the copy's identity
(its folder, name and version, and the bytes of its dataset_info.json, which
lists every file's size), with the sha256 of its own bytes beside it. A cache
whose bytes do not match that checksum (truncated, corrupted, half-written) is
ignored and rebuilt, never trusted. Writes go to a temporary file, renamed
into place once complete.
"""

import hashlib
import os
import pathlib

import numpy as np


def default_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("NN_JAX_CACHE") or "~/.cache/nn_jax").expanduser()


def _sha256(path: pathlib.Path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


class DecodedCache:
  """Decoded (inputs, targets) per split of one prepared copy at `prepared` (e.g. .../mnist/3.0.1)."""

  def __init__(self, cache_dir: str, prepared: pathlib.Path, splits):
    identity = hashlib.sha256()
    identity.update(str(prepared.resolve()).encode())
    identity.update((prepared / "dataset_info.json").read_bytes())
    name = f"{prepared.parent.name}-{prepared.name}-{identity.hexdigest()[:16]}"
    self.path = (pathlib.Path(cache_dir).expanduser() if cache_dir else default_dir()) / f"{name}.npz"
    self.checksum = self.path.with_suffix(".npz.sha256")
    self.splits = tuple(splits)

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
