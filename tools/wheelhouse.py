"""`make wheelhouse`: the wheels an offline accelerator node still lacks, for its Python, into wheelhouse/.

Such a node has CUDA JAX, flax, optax and orbax-checkpoint preinstalled (their
own versions are used; this never fetches jax) but not the data and logging
packages below, nor some of their own needs; protobuf comes along so that
tensorflow-metadata's generated code meets the runtime it was built for.
Versions are those of this machine's .venv, which the tests ran with. A package
published as source only is built into a wheel here (pure Python ones).

  python -m tools.wheelhouse --python-version 3.12 --dest wheelhouse
"""

import argparse
import importlib.metadata
import pathlib
import subprocess
import sys

PACKAGES = ("tensorflow-datasets", "array-record", "ml-collections", "tensorboardX", "dm-tree", "immutabledict",
            "promise", "simple-parsing", "docstring-parser", "tensorflow-metadata", "googleapis-common-protos",
            "termcolor", "toml", "importlib-resources", "protobuf", "crc32c")
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)] + ["manylinux2014_x86_64"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--python-version", default="3.12")
  parser.add_argument("--dest", default="wheelhouse")
  args = parser.parse_args()
  dest = pathlib.Path(args.dest)
  dest.mkdir(parents=True, exist_ok=True)
  pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES]
  (dest / "requirements.txt").write_text("\n".join(pins) + "\n")
  platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
  for pin in pins:
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", args.python_version, "--implementation", "cp", *platforms, "-d", str(dest), pin]
    if subprocess.run(download, capture_output=True).returncode:  # no wheel published: build one (pure Python)
      subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), pin], check=True)
  wheels = sorted(dest.glob("*.whl"))
  print(f"{len(wheels)} wheels in {dest}/ ({sum(w.stat().st_size for w in wheels) / 2**20:.1f} MiB) for Python "
        f"{args.python_version}: " + ", ".join(w.name.split("-")[0] for w in wheels))


if __name__ == "__main__":
  main()
