"""eval.py's output set: written into a staging folder beside ``--output`` and swapped in whole
at the end, so a run that fails leaves the previous set (if any) as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

from optical_jax.errors import UsageError


def staging_dir(out: Path, process: int = 0) -> Path:
  if out.exists() and not out.is_dir():
    raise UsageError(f"--output {out}: exists and is not a folder")
  # The set replaces the folder whole, so only an earlier output set (it has metrics.json) or an
  # empty folder may be replaced: never a collection, a work dir or anything else.
  if out.is_dir() and any(out.iterdir()) and not (out / "metrics.json").is_file():
    raise UsageError(
      f"--output {out}: a folder that is not an earlier eval.py output (no "
      "metrics.json) would be replaced; give a new or empty folder"
    )
  staging = out.parent / (f".{out.name}.partial" + (f".{process}" if process else ""))
  try:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
  except OSError as e:
    raise UsageError(f"--output {out}: cannot write there ({e.strerror})") from e
  return staging


def swap_in(staging: Path, out: Path, keep_cache: bool) -> None:
  """Replaces the folder ``out`` by ``staging`` as a whole (the default cache moves along)."""
  if out.exists():
    if keep_cache and (out / "cache").is_dir():
      (out / "cache").rename(staging / "cache")
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
  else:
    staging.rename(out)
