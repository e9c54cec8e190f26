"""Document representations on disk: written shard by shard, resumable, read back in chunks.

A store is a folder::

  manifest.json   kind, rows, shapes and dtypes, shard size, shards finished, complete
  vectors.npy     dense: float32 [N, d]
  tokens.npy      maxsim: float16 [N, L, p] (L: the longest text's token count)
  mask.npy        maxsim: bool [N, L]

The arrays are ``.npy`` files allocated at their full size before the first shard
(``np.lib.format.open_memmap``). Encoding writes one shard of ``shard_size`` texts at a time,
flushes it, then rewrites the manifest atomically with the number of finished shards: a run
killed at any point resumes from the first unfinished shard, and a store whose files do not match
its manifest (truncated, another size) is rebuilt, never read.

Reading: dense vectors are loaded whole (FAISS and the dense search need them; they are the
pooled vectors' size); token vectors and masks stay on disk as :class:`DiskRows`, which reads
only the rows a search chunk asks for with plain file reads (no memory map, so the resident
memory of a MaxSim search does not grow with the collection).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from optical_jax.io import write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Texts encoded and flushed per shard: a kill loses at most one shard's work.
SHARD_SIZE = 2048
FORMAT = 1


class DiskRows:
  """Read-only rows of a ``.npy`` file: ``x[index]`` for an int array or slice reads only what
  it needs: the span between the smallest and largest row asked for when the rows are dense in
  it (a search chunk), else each run of consecutive rows (re-ranking candidates).

  Shape ``[N, ...]``; ``len(x)``, ``x.shape``, ``x.dtype`` and ``np.asarray(x)`` (all rows)
  work as for an array.
  """

  def __init__(self, path: Path):
    self.path = Path(path)
    with open(self.path, "rb") as f:
      version = np.lib.format.read_magic(f)
      read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
      )
      self.shape, fortran, self.dtype = read(f)
      self.offset = f.tell()
    if fortran:
      raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
    self.shape = tuple(self.shape)
    self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

  def __len__(self):
    return self.shape[0]

  def _read(self, start: int, stop: int) -> np.ndarray:
    with open(self.path, "rb") as f:
      f.seek(self.offset + start * self.row_bytes)
      raw = f.read((stop - start) * self.row_bytes)
    return np.frombuffer(raw, self.dtype).reshape((stop - start,) + self.shape[1:])

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, slice):
      start, stop, step = index.indices(len(self))
      return self._read(start, max(start, stop))[::step].copy()
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    if index.size == 0:
      return np.zeros((0,) + self.shape[1:], self.dtype)
    index = np.where(index < 0, index + len(self), index)
    lo, hi = int(index.min()), int(index.max()) + 1
    if lo < 0 or hi > len(self):
      raise IndexError(f"{self.path}: rows {lo}..{hi - 1} outside [0, {len(self)})")
    rows = np.unique(index)
    if hi - lo <= 2 * len(rows):  # dense enough (a search chunk): one read of the span
      return self._read(lo, hi)[index - lo]
    # scattered (re-ranking candidates): one read per run of consecutive rows
    out = np.empty((len(rows),) + self.shape[1:], self.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    with open(self.path, "rb") as f:
      for run in np.split(np.arange(len(rows)), breaks):
        start, stop = int(rows[run[0]]), int(rows[run[-1]]) + 1
        f.seek(self.offset + start * self.row_bytes)
        out[run] = np.frombuffer(f.read((stop - start) * self.row_bytes), self.dtype).reshape(
          (stop - start,) + self.shape[1:]
        )
    return out[np.searchsorted(rows, index)]

  def __array__(self, dtype=None, copy=None):
    out = self._read(0, len(self))
    return out.astype(dtype) if dtype is not None else out.copy()


def _arrays(kind: str, rows: int, dim: int, width: int) -> Dict[str, tuple]:
  if kind == "dense":
    return {"vectors": ((rows, dim), "float32")}
  return {"tokens": ((rows, width, dim), "float16"), "mask": ((rows, width), "bool")}


def _valid(folder: Path, manifest: dict) -> Optional[str]:
  """Why the files do not match the manifest, or None when they do."""
  for name, (shape, dtype) in manifest["arrays"].items():
    path = folder / f"{name}.npy"
    if not path.is_file():
      return f"{path.name} is missing"
    try:
      rows = DiskRows(path)
    except (OSError, ValueError) as e:
      return f"{path.name}: {e}"
    if list(rows.shape) != list(shape) or str(rows.dtype) != dtype:
      return f"{path.name} is {rows.shape} {rows.dtype}, the manifest says {shape} {dtype}"
    if path.stat().st_size < rows.offset + rows.row_bytes * rows.shape[0]:
      return f"{path.name} is truncated ({path.stat().st_size} bytes)"
  return None


def read_manifest(folder: Path) -> Optional[dict]:
  """The store's manifest, or None when there is none or it is unreadable."""
  try:
    return json.loads((Path(folder) / MANIFEST).read_text())
  except (OSError, ValueError):
    return None


def open_store(folder: Path) -> Optional[Dict[str, object]]:
  """A complete store -> its arrays by name (dense ``vectors`` in memory; ``tokens`` and
  ``mask`` as :class:`DiskRows`); None if it is absent, unfinished or damaged."""
  folder = Path(folder)
  manifest = read_manifest(folder)
  if manifest is None or not manifest.get("complete"):
    return None
  problem = _valid(folder, manifest)
  if problem:
    log.warning("representation store %s: %s; encoding again", folder, problem)
    return None
  if manifest["kind"] == "dense":
    return {"vectors": np.load(folder / "vectors.npy")}
  return {name: DiskRows(folder / f"{name}.npy") for name in ("tokens", "mask")}


def build_store(
  folder: Path,
  kind: str,
  num_texts: int,
  dim: int,
  width: int,
  encode_shard: Callable[[int, int], Sequence[np.ndarray]],
  key: str,
  shard_size: int = SHARD_SIZE,
  progress: bool = True,
):
  """Encodes ``num_texts`` texts into the store ``folder``, resuming a killed run of the same
  ``key`` (a hash of model, texts and settings), and returns :func:`open_store` of it.

  ``encode_shard(start, stop)`` returns the representations of texts ``[start, stop)``: dense
  ``(vectors [n, dim],)``; maxsim ``(tokens [n, w, dim], mask [n, w])`` with ``w <= width``.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  folder = Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  arrays = {
    name: [list(shape), dtype]  # as JSON reads it back
    for name, (shape, dtype) in _arrays(kind, num_texts, dim, width).items()
  }
  fresh = {
    "format": FORMAT,
    "key": key,
    "kind": kind,
    "rows": num_texts,
    "arrays": arrays,
    "shard_size": shard_size,
    "shards_done": 0,
    "complete": False,
  }
  manifest = read_manifest(folder)
  resumable = (
    manifest is not None
    and all(
      manifest.get(k) == fresh[k] for k in ("format", "key", "kind", "rows", "arrays", "shard_size")
    )
    and _valid(folder, manifest) is None
  )
  if resumable and manifest["shards_done"]:
    log.info("representation store %s: resuming at shard %d", folder, manifest["shards_done"])
  if not resumable:
    manifest = fresh
    for name, (shape, dtype) in arrays.items():
      np.lib.format.open_memmap(
        folder / f"{name}.npy", mode="w+", dtype=np.dtype(dtype), shape=tuple(shape)
      ).flush()
    write_json_atomic(folder / MANIFEST, manifest, indent=1)
  shards = -(-num_texts // shard_size)
  bar = tqdm(
    total=num_texts,
    initial=min(num_texts, manifest["shards_done"] * shard_size),
    desc="documents",
    unit="text",
    disable=not progress,
  )
  for s in range(manifest["shards_done"], shards):
    start, stop = s * shard_size, min(num_texts, (s + 1) * shard_size)
    parts = encode_shard(start, stop)
    for name, part in zip(arrays, parts):
      out = np.lib.format.open_memmap(folder / f"{name}.npy", mode="r+")
      if out.ndim > 1 and part.shape[1] < out.shape[1]:  # token width of this shard
        out[start:stop] = 0
        out[start:stop, : part.shape[1]] = part
      else:
        out[start:stop] = part
      out.flush()
      del out
    manifest["shards_done"] = s + 1
    write_json_atomic(folder / MANIFEST, manifest, indent=1)
    bar.update(stop - start)
  bar.close()
  manifest["complete"] = True
  write_json_atomic(folder / MANIFEST, manifest, indent=1)
  return open_store(folder)
