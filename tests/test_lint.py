"""The tree passes ``ruff check`` (pyproject.toml's rules: pyflakes and syntax errors) and is
formatted as ``ruff format`` writes it (2-space indents, 100 columns; pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
  if (
    shutil.which("ruff") is None
    and subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode
  ):
    pytest.skip("ruff is not installed (requirements-test.txt)")
  return subprocess.run(
    [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )


def test_ruff_finds_nothing():
  proc = _ruff("check", "--output-format", "concise", ".")
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_tree_is_formatted():
  """`ruff format .` would change nothing (run it to fix a failure)."""
  proc = _ruff("format", "--check", ".")
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
