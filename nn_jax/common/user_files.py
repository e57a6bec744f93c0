"""The researcher's own Python files, named by path: experiment configs, sweeps, models and datasets.

`path/to/file.py:Name` names an object of a file outside the package (a model
class, a dataset spec), as `--config FILE:variant` names a config's variant.
A file is imported once per process and path, so the object it defines keeps
its identity (a model class's compiled programs are cached by it). Any fault
(no such file, its own exception, no such name) is one UserError line.
"""

import importlib.util
import os
import pathlib
import sys
import types

from nn_jax.common.errors import UserError

_imported: dict[pathlib.Path, types.ModuleType] = {}


def execute(path: str, what: str, example: str, module_name: str = "") -> types.ModuleType:
  """Runs the file at `path` as a fresh module (config and sweep files: each load runs it again). With a
  `module_name`, the module is registered under it in sys.modules, as an import would (dataclasses, and
  so linen Modules, look their module up there)."""
  if not os.path.isfile(path):
    raise UserError(f"{what} {path!r} does not exist; pass e.g. {example}")
  spec = importlib.util.spec_from_file_location(module_name or f"nn_jax_user_{pathlib.Path(path).stem}", path)
  module = importlib.util.module_from_spec(spec)
  if module_name:
    sys.modules[module_name] = module
  try:
    spec.loader.exec_module(module)
  except (Exception, SystemExit) as e:  # the file is the user's code: its error (or exit) is reported, in one line
    sys.modules.pop(module_name, None)
    raise UserError(f"{what} {path} raised {type(e).__name__}: {e}; fix the file") from e
  return module


def is_reference(name: str) -> bool:
  """Whether `name` is a `path/to/file.py:Name` reference rather than a built-in's name."""
  return ".py:" in name


def named_object(reference: str, key: str):
  """The object `path/to/file.py:Name` names; `key` (e.g. "config.model.name") words the errors."""
  path, _, name = reference.rpartition(":")
  example = f"{key}=path/to/file.py:Name"
  if not (path.endswith(".py") and name.isidentifier()):
    raise UserError(f"{key} {reference!r} is not path/to/file.py:Name; write e.g. {example}")
  resolved = pathlib.Path(path).resolve()
  if resolved not in _imported:
    _imported[resolved] = execute(path, f"{key}'s file", example,
                                  module_name=f"nn_jax_user_{resolved.stem}_{len(_imported)}")
  module = _imported[resolved]
  if not hasattr(module, name):
    raise UserError(f"{key} {reference!r}: {path} defines no {name!r}; define it there or fix the name")
  return getattr(module, name)


def builtin_or_named(name: str, builtins: dict, key: str, is_wanted, wanted: str):
  """`builtins[name]`, or the object `path/to/file.py:Name` names when `is_wanted(object)`; `key` (e.g.
  "config.model.name") and `wanted` (what the object must be) word the one-line errors."""
  if is_reference(name):
    found = named_object(name, key)
    if not is_wanted(found):
      raise UserError(f"{key} {name!r} is a {type(found).__name__}, not {wanted}")
    return found
  if name not in builtins:
    raise UserError(f"{key} {name!r} is not one of {', '.join(sorted(builtins))}, nor a path/to/file.py:Name "
                    f"of your own")
  return builtins[name]
