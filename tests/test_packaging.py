"""Packaging: pyproject.toml, requirements*.txt and constraints.txt agree (docs/USAGE.md "Install
and test"). The dependencies are compatible ranges (so `pip install .` keeps a jax build installed
first), the tested versions are pinned in constraints.txt only, and one Python version is stated."""

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _lines(name: str):
  """Requirement lines of a requirements/constraints file (comments, blank and option lines out)."""
  out = []
  for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
    line = line.split("#", 1)[0].strip()
    if line and not line.startswith("-"):
      out.append(Requirement(line))
  return out


def _by_name(reqs):
  return {canonicalize_name(r.name): r for r in reqs}


def _project_requirements():
  """Core dependencies and every extra but `all` (which names the package itself)."""
  project = PYPROJECT["project"]
  reqs = [Requirement(s) for s in project["dependencies"]]
  for extra, specs in project["optional-dependencies"].items():
    if extra != "all":
      reqs += [Requirement(s) for s in specs]
  return reqs


def test_dependencies_are_ranges_not_pins():
  for r in _project_requirements():
    assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r} pins a version"
    assert not r.extras, f"{r}: an extra of a dependency (jax[cpu] would replace a GPU jax build)"
  jax = _by_name(_project_requirements())["jax"]
  assert "0.10.1" in jax.specifier and "0.10.2" in jax.specifier


def test_all_extra_names_every_extra():
  extras = PYPROJECT["project"]["optional-dependencies"]
  (all_req,) = [Requirement(s) for s in extras["all"]]
  assert canonicalize_name(all_req.name) == "optical-jax"
  assert all_req.extras == set(extras) - {"all"}


def test_requirements_txt_is_pyproject_plus_the_cpu_jax():
  """requirements.txt (the CPU install) = the package's dependencies and extras, same ranges."""
  runtime = _by_name(_lines("requirements.txt"))
  project = _by_name(_project_requirements())
  assert set(runtime) == set(project)
  for name, r in project.items():
    assert runtime[name].specifier == r.specifier, name
    assert str(runtime[name].marker) == str(r.marker), name
  assert runtime["jax"].extras == {"cpu"}


def test_constraints_pin_every_requirement_exactly():
  constraints = _lines("constraints.txt")
  pinned = {canonicalize_name(c.name) for c in constraints}
  for c in constraints:
    assert [s.operator for s in c.specifier] == ["=="], f"{c} is not an exact pin"
  wanted = set(_by_name(_lines("requirements.txt"))) | set(
    _by_name(_lines("requirements-test.txt"))
  )
  assert wanted <= pinned, f"constraints.txt lacks {sorted(wanted - pinned)}"
  # Every pin is inside the requirement's range (a stale pin would make pip refuse to resolve).
  for c in constraints:
    version = next(iter(c.specifier)).version
    for f in ("requirements.txt", "requirements-test.txt"):
      for r in _lines(f):
        if canonicalize_name(r.name) == canonicalize_name(c.name) and str(r.marker) == str(
          c.marker
        ):
          assert r.specifier.contains(version, prereleases=True), f"{c} outside {f}'s {r}"


def test_torch_is_the_cpu_build_on_linux():
  test_reqs = (ROOT / "requirements-test.txt").read_text(encoding="utf-8")
  assert "--extra-index-url https://download.pytorch.org/whl/cpu" in test_reqs
  linux = {"platform_system": "Linux"}
  torch = [r for r in _lines("requirements-test.txt") if r.name == "torch"]
  on_linux = [r for r in torch if r.marker is None or r.marker.evaluate(linux)]
  assert len(on_linux) == 1 and all(s.version.endswith("+cpu") for s in on_linux[0].specifier)


def test_one_python_version_everywhere():
  assert PYPROJECT["project"]["requires-python"] == ">=3.11"
  assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
  for doc in ("README.md", "docs/USAGE.md"):
    text = (ROOT / doc).read_text(encoding="utf-8")
    stated = set(re.findall(r"Python (3\.\d+)", text))
    assert stated == {"3.11"}, f"{doc} states Python {sorted(stated)}"


def test_ci_installs_with_the_constraints():
  ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
  readme = (ROOT / "README.md").read_text(encoding="utf-8")
  command = re.search(r"^pip install -c constraints.txt -r requirements-test.txt .*$", ci, re.M)
  assert command and command.group(0) in readme, "the README's test command is what .ci/run runs"
