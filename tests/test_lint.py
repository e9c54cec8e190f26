"""The tree passes ``ruff check`` (pyproject.toml's rules: pyflakes and syntax errors)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
  if shutil.which("ruff") is None and subprocess.run(
      [sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode:
    pytest.skip("ruff is not installed (requirements-test.txt)")
  proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
