"""The package's folders are layers, and imports run one way: from the interfaces down."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nn_jax"

# Top to bottom; a module may import its own layer and those below it, never one above.
LAYERS = (
    ("nn_jax", "nn_jax.__main__", "nn_jax.cli", "nn_jax.api", "nn_jax.export"),  # how a user reaches it
    ("nn_jax.ablations",),  # sweeps, reports, statistics, the cluster launcher
    ("nn_jax.config",),  # experiment files and flags -> a checked config (interfaces and sweeps load it)
    ("nn_jax.training",),
    ("nn_jax.workdir",),  # everything that reads or writes a run's workdir
    ("nn_jax.models", "nn_jax.data"),
    ("nn_jax.common",),  # errors, metric directions, the device mesh
)


def layer_of(module: str) -> int:
  matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
             if module == prefix or (prefix != "nn_jax" and module.startswith(prefix + "."))]
  assert matches, f"{module} is in no layer: add its folder to LAYERS"
  return max(matches)[1]


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path):
  """(line, imported module) for every import of nn_jax or of the benchmarks and tools, also in functions."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [f"{node.module}.{alias.name}" for alias in node.names]
      yield from ((node.lineno, name if _is_module(name) else node.module) for name in names)
    elif isinstance(node, ast.Import):
      yield from ((node.lineno, alias.name) for alias in node.names)


def _is_module(dotted: str) -> bool:
  relative = pathlib.Path(*dotted.split(".")[1:])
  return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_run_from_the_interfaces_down(path):
  importer = module_name(path)
  for line, imported in imports(path):
    assert not imported.startswith(("benchmarks", "tools")), f"{importer}:{line} imports {imported}: the library " \
                                                             "never imports its benchmarks or tools"
    if imported.split(".")[0] == "nn_jax" and imported != "nn_jax":
      assert layer_of(imported) >= layer_of(importer), \
          f"{importer}:{line} imports {imported}, a layer above it (tests/layers_test.py: LAYERS)"



def test_no_import_cycle():
  graph = {module_name(path): {imported for _, imported in imports(path) if imported.startswith("nn_jax.")}
           for path in MODULES}
  def cycle_from(module, path):
    if module in path:
      return path[path.index(module):] + [module]
    for imported in graph.get(module, ()):
      found = cycle_from(imported, path + [module])
      if found:
        return found
    return None
  for module in graph:
    assert cycle_from(module, []) is None, " -> ".join(cycle_from(module, []))
