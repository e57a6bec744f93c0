"""Runs the nn_jax CLI with a fault injected, for tests/fault_tolerance_test.py.

  python tests/fault_injection.py kill_after_save N -- train ...   SIGKILL right after the Nth checkpoint is on disk
  python tests/fault_injection.py kill_inside_save N -- train ...  SIGKILL inside the Nth checkpoint write,
                                                                   after its files are written, before orbax
                                                                   renames its temporary folder into place
"""

import os
import signal
import sys


def _kill_self(note: str) -> None:
  print(note, flush=True)
  os.kill(os.getpid(), signal.SIGKILL)


def inject(mode: str, nth: int) -> None:
  calls = {"count": 0}
  if mode == "kill_after_save":
    from nn_jax.workdir import checkpoint
    original = checkpoint.Checkpoints.save

    def save(self, *args, **kwargs):
      original(self, *args, **kwargs)
      self.wait()  # an asynchronous save: its write complete
      calls["count"] += 1
      if calls["count"] == nth:
        _kill_self(f"FAULT: killed after checkpoint save {nth}")

    checkpoint.Checkpoints.save = save
  elif mode == "kill_inside_save":
    from orbax.checkpoint._src.path import atomicity
    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):
      if not self._final_path.name.isdigit():  # an item inside a step's folder, not the step itself
        return await original(self, *args, **kwargs)
      calls["count"] += 1
      if calls["count"] == nth:
        _kill_self(f"FAULT: killed inside checkpoint write {nth}, before {self.get().name} was renamed")
      return await original(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize
  else:
    raise SystemExit(f"unknown fault {mode!r}")


if __name__ == "__main__":
  mode, nth, separator, *cli_args = sys.argv[1:]
  assert separator == "--"
  inject(mode, int(nth))
  from nn_jax.cli import main
  sys.exit(main(cli_args))
