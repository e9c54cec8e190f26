"""The package's layers (README "Layout"): every import, at module level or inside a function,
goes from a higher layer to a lower one or within a layer, modules form no cycle, no two
modules in the tree share a name, and no test module imports another."""

import ast
import collections
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "optical_jax"

#: Layers from the bottom: a unit (a subpackage or top-level module of optical_jax) may import
#: units of its own layer or below. evaluation (metrics, statistics, reports) holds no model
#: code, so the retrieval pipeline and the studies sit above it.
#: cli (the commands' flag and one-line error handling; it imports errors only) is at the bottom,
#: so that any module with a command (python -m optical_jax.commands.fetch_data) can use it.
#: testsets (the test collections and their registry) builds collections from data's readers.
LAYERS = (
  ("errors", "io", "cli"),
  ("tokenization", "packing"),
  ("models",),
  ("losses", "loading"),
  ("data",),
  ("testsets",),
  ("evaluation",),
  ("encode",),
  ("training",),
  ("retrieval",),
  ("dev_eval",),
  ("config_checks",),
  ("experiment",),
  ("studies",),
  ("commands",),
)
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _modules():
  """{dotted module name: file} of the package."""
  out = {}
  for f in sorted(PACKAGE.rglob("*.py")):
    parts = f.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = f
  return out


def _imports(path: pathlib.Path, modules):
  """Package modules ``path`` imports anywhere (``from optical_jax import x`` names module x)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if not node.module.startswith("optical_jax"):
        continue
      for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        found.add(sub if sub in modules else node.module)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith("optical_jax"))
  return {m for m in found if m in modules}


def _unit(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else parts[0]


MODULES = _modules()
GRAPH = {m: _imports(f, MODULES) - {m} for m, f in MODULES.items()}


def test_every_unit_has_a_layer():
  units = {_unit(m) for m in MODULES if m != "optical_jax"}
  assert units <= set(RANK), f"place {sorted(units - set(RANK))} in LAYERS"


def test_imports_point_down_the_layers():
  back = [
    f"{m} imports {t} ({_unit(m)} is layer {RANK[_unit(m)]}, {_unit(t)} layer {RANK[_unit(t)]})"
    for m, targets in GRAPH.items()
    if m != "optical_jax"
    for t in targets
    if t != "optical_jax" and RANK[_unit(t)] > RANK[_unit(m)]
  ]
  assert not back, "\n".join(back)


def test_no_module_cycle():
  state, stack, cycles = {}, [], []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(GRAPH[m]):
      if state.get(t) == "open":
        cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
      elif t not in state:
        visit(t)
    stack.pop()
    state[m] = "done"

  for m in sorted(GRAPH):
    if m not in state:
      visit(m)
  assert not cycles, "\n".join(cycles)


def test_module_names_are_unique():
  """Within the package, and against the entry points beside it (train.py, eval.py, study.py)."""
  names = collections.defaultdict(list)
  for m, f in MODULES.items():
    if f.name != "__init__.py":
      names[f.stem].append(str(f.relative_to(ROOT)))
  for entry in ("train.py", "eval.py", "study.py"):
    names[pathlib.Path(entry).stem].append(entry)
  repeated = {n: paths for n, paths in names.items() if len(paths) > 1}
  assert not repeated, repeated


def test_only_commands_have_a_main():
  """A library module has no ``main()`` and no ``if __name__ == "__main__"`` block: commands live
  in ``optical_jax/commands/`` (and train.py, eval.py, study.py beside the package)."""
  found = []
  for m, f in MODULES.items():
    if _unit(m) == "commands":
      continue
    for node in ast.parse(f.read_text(encoding="utf-8")).body:
      if isinstance(node, ast.FunctionDef) and node.name == "main":
        found.append(f"{m}: def main")
      if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
        found.append(f"{m}: if __name__ == '__main__'")
  assert not found, found
  commands = [m for m in MODULES if _unit(m) == "commands" and m != "optical_jax.commands"]
  assert commands and all("main" in MODULES[m].read_text() for m in commands)


#: STYLE.md: modules stay under ~500 lines and are split by concept.
MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
  """Every module of the package (``__init__.py`` included) has at most 500 lines."""
  long = {}
  for f in MODULES.values():
    n = len(f.read_text(encoding="utf-8").splitlines())
    if n > MAX_MODULE_LINES:
      long[str(f.relative_to(ROOT))] = n
  assert not long, f"over {MAX_MODULE_LINES} lines (split by concept): {long}"


def test_no_test_module_imports_another():
  """Shared test code lives in conftest.py (fixtures) or a support module, not in a test_*.py."""
  tests = {f.stem for f in (ROOT / "tests").rglob("test_*.py")}
  bad = []
  for f in sorted((ROOT / "tests").rglob("*.py")):
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
      names = (
        [node.module or ""]
        if isinstance(node, ast.ImportFrom)
        else [a.name for a in node.names]
        if isinstance(node, ast.Import)
        else []
      )
      bad += [f"{f.name} imports {n}" for n in names if n.split(".")[-1] in tests]
  assert not bad, bad


def test_tests_mirror_the_package():
  """tests/<package>/ holds the tests of optical_jax/<package>/ (the tests of top-level modules
  and entry points stay in tests/); test file names are unique, as pytest imports each by it."""
  folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
  packages = {p.parent.name for p in (ROOT / "optical_jax").glob("*/__init__.py")}
  assert folders and folders <= packages, sorted(folders - packages)
  names = collections.Counter(f.name for f in (ROOT / "tests").rglob("test_*.py"))
  assert all(n == 1 for n in names.values()), [f for f, n in names.items() if n > 1]


def test_the_walk_sees_lazy_imports(tmp_path):
  """The checks above are only as good as the walk: imports inside functions count, and
  ``from package import module`` names the module."""
  f = tmp_path / "m.py"
  f.write_text(
    "def f():\n  from optical_jax.retrieval import search\n  import optical_jax.io\n"
    "  from optical_jax.testsets.trec_files import read_qrels\n"
  )
  assert _imports(f, MODULES) == {
    "optical_jax.retrieval.search",
    "optical_jax.io",
    "optical_jax.testsets.trec_files",
  }


if __name__ == "__main__":
  pytest.main([__file__])
