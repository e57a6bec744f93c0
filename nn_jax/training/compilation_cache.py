"""JAX's persistent compilation cache, on by default, so that a program is compiled once, ever.

A rerun, a resumed run, the next program of a sweep, a benchmark and the next
test load their compiled programs from the cache instead of compiling them
again. Every program is cached, however quickly it compiled (JAX skips those
under a second unless told otherwise, and most of this project's do). Where
the cache lives, first that applies:

  config.compilation_cache          a folder, or "off"
  $NN_JAX_COMPILATION_CACHE         a folder, or "off"
  $XDG_CACHE_HOME/nn_jax/jax_compilation_cache, else ~/.cache/nn_jax/jax_compilation_cache

The cache is keyed by the program, the compiler options and the backend, so a
program served from it is the one the compiler would have built (tested: a run
gives bit-identical parameters with a cold and with a warm cache).
"""

import collections
import os
import pathlib

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache

OFF = "off"
_events = collections.Counter()
_HIT, _REQUEST = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/compile_requests_use_cache"


def folder(configured: str = "") -> pathlib.Path | None:
  """Where the cache lives (None: off), from the config's value, the environment, else the user's cache."""
  chosen = configured or os.environ.get("NN_JAX_COMPILATION_CACHE", "")
  if chosen == OFF:
    return None
  if chosen:
    return pathlib.Path(chosen).expanduser()
  user_cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
  return user_cache / "nn_jax" / "jax_compilation_cache"


def enable(configured: str = "") -> pathlib.Path | None:
  """Points JAX's persistent cache at `folder(configured)` (or turns it off); returns the folder."""
  path = folder(configured)
  current = jax.config.jax_compilation_cache_dir
  wanted = None if path is None else str(path)
  if wanted != current:
    jax.config.update("jax_compilation_cache_dir", wanted)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax_cache.reset_cache()  # JAX decides once per process whether to use a cache: decide again
  return path


def counts() -> tuple[int, int]:
  """(programs compiled, those of them the persistent cache served) so far in this process."""
  return _events[_REQUEST], _events[_HIT]


def _count(event: str, **_) -> None:
  if event in (_HIT, _REQUEST):
    _events[event] += 1


jax.monitoring.register_event_listener(_count)
