"""Document and query representations for search, with an on-disk document cache.

Dense: one L2-normalised vector per text, ``[N, d]`` float32.
Late interaction (MaxSim): normalised token vectors padded to the longest
text, ``[N, L, p]`` float16 on disk and float32 on device, plus ``mask [N, L]``.

The document side is encoded once per (model, texts, settings) into a store
under ``cache_dir`` (``retrieval/store.py``: ``.npy`` arrays written shard by
shard with a manifest, resumable after a kill), keyed by a hash of the model's
parameters, the texts and the settings. MaxSim token vectors are read back from
disk chunk by chunk during search; dense vectors are loaded whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from optical_jax.encode import encode_texts, encode_tokens
from optical_jax.loading.load import LoadedEncoder
from optical_jax.retrieval.store import SHARD_SIZE, build_store, open_store

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Representations:
  """``vectors [N, d]`` (dense) or ``tokens [N, L, p]`` + ``mask [N, L]`` (maxsim)."""

  kind: str
  vectors: Optional[np.ndarray] = None
  tokens: Optional[np.ndarray] = None
  mask: Optional[np.ndarray] = None

  def __len__(self):
    return len(self.vectors if self.kind == "dense" else self.tokens)


def concat_reps(parts: Sequence[Representations]) -> Representations:
  """The texts of several :class:`Representations` of one kind as one, in order (token arrays
  padded to the widest part)."""
  kind = parts[0].kind
  if kind == "dense":
    return Representations("dense", vectors=np.concatenate([p.vectors for p in parts]))
  width = max(p.tokens.shape[1] for p in parts)
  pad = lambda a: np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2))
  return Representations(
    "maxsim",
    tokens=np.concatenate([pad(np.asarray(p.tokens)) for p in parts]),
    mask=np.concatenate([pad(np.asarray(p.mask)) for p in parts]),
  )


def fingerprint(model: LoadedEncoder) -> str:
  """A hash of the model's parameters (every leaf's bytes), for cache keys."""
  h = hashlib.sha256(model.source.encode())
  for leaf in jax.tree_util.tree_leaves((model.params, model.head)):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()[:16]


def vector_width(model: LoadedEncoder, kind: str) -> int:
  """The width of ``model``'s vectors for ranker ``kind``: pooled states for ``"dense"``; token
  vectors, through the late-interaction head when there is one, for ``"maxsim"``."""
  if kind == "maxsim" and model.head is not None:
    return int(model.head["kernel"].shape[1])
  return model.config.output_size


def _token_reps(
  model: LoadedEncoder,
  texts: Sequence[str],
  prefix: str,
  max_length: int,
  batch_size: int,
  progress: bool,
  desc: str,
) -> Representations:
  """Token vectors of every text (:func:`optical_jax.encode.encode_tokens`, float16)."""
  tokens, mask = encode_tokens(
    model,
    texts,
    prefix=prefix,
    max_length=max_length,
    batch_size=batch_size,
    progress=progress,
    desc=desc,
  )
  return Representations("maxsim", tokens=tokens, mask=mask)


def encode(
  model: LoadedEncoder,
  texts: Sequence[str],
  kind: str,
  *,
  prefix: str = "",
  max_length: Optional[int] = None,
  batch_size: int = 32,
  pooling: Optional[str] = None,
  progress: bool = True,
  desc: str = "encode",
) -> Representations:
  """Representations of ``texts`` for ranker ``kind`` (``"dense"`` or ``"maxsim"``)."""
  max_length = min(max_length or model.tokenizer.max_length, model.tokenizer.max_length)
  if kind == "dense":
    vecs = encode_texts(
      model,
      texts,
      pooling=pooling,
      max_length=max_length,
      prefix=prefix,
      batch_size=batch_size,
      normalize=True,
      progress=progress,
    )
    return Representations("dense", vectors=vecs)
  if kind == "maxsim":
    return _token_reps(model, texts, prefix, max_length, batch_size, progress, desc)
  raise ValueError(f"ranker {kind!r} not in ('dense', 'maxsim')")


def _cache_key(model: LoadedEncoder, texts: Sequence[str], kind: str, kw) -> str:
  h = hashlib.sha256()
  h.update(fingerprint(model).encode())
  h.update(
    repr(
      (kind, sorted((k, v) for k, v in kw.items() if k not in ("progress", "desc", "batch_size")))
    ).encode()
  )
  for t in texts:
    h.update(t.encode("utf-8") + b"\0")
  return h.hexdigest()[:24]


def _legacy_npz(path: Path, kind: str, rows: int) -> Optional[Representations]:
  """A cache file of the earlier single-``.npz`` format, or None (absent or unreadable)."""
  if not path.is_file():
    return None
  try:
    with np.load(path) as z:
      if kind == "dense":
        cached = Representations("dense", vectors=z["vectors"])
      else:
        cached = Representations("maxsim", tokens=z["tokens"], mask=z["mask"])
    if len(cached) != rows:
      raise ValueError(f"{len(cached)} rows for {rows} texts")
    return cached
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
    # Truncated (a kill while copying it, a full disk) or otherwise unreadable: rebuild.
    log.warning(
      "document representations: cache file %s is unreadable (%s: %s); encoding again",
      path,
      type(e).__name__,
      e,
    )
    return None


def _store_shape(model: LoadedEncoder, texts: Sequence[str], kind: str, kw) -> (int, int):
  """(vector width, token rows per text) of the store of ``texts``: the longest text's token
  count for MaxSim (as :func:`encode` pads), 0 for dense."""
  dim = vector_width(model, kind)
  if kind == "dense":
    return dim, 0
  max_length = min(kw.get("max_length") or model.tokenizer.max_length, model.tokenizer.max_length)
  ids, _ = model.tokenizer.encode_ids(texts, max_length, kw.get("prefix", ""))
  return dim, max((len(x) for x in ids), default=1)


def encode_cached(
  model: LoadedEncoder,
  texts: Sequence[str],
  kind: str,
  cache_dir,
  shard_size: int = SHARD_SIZE,
  **kw,
) -> Representations:
  """:func:`encode` with the result in a disk store under ``cache_dir`` (None = no cache):
  written shard by shard and resumable after a kill (``retrieval/store.py``); MaxSim token
  vectors are then read from disk chunk by chunk. A cache file of the earlier ``.npz`` format
  is still read."""
  if cache_dir is None:
    return encode(model, texts, kind, **kw)
  key = _cache_key(model, texts, kind, kw)
  legacy = _legacy_npz(Path(cache_dir) / f"{kind}-{key}.npz", kind, len(texts))
  if legacy is not None:
    log.info("document representations: cache hit %s-%s.npz", kind, key)
    return legacy
  folder = Path(cache_dir) / f"{kind}-{key}"
  arrays = open_store(folder)
  if arrays is None:
    dim, width = _store_shape(model, texts, kind, kw)
    quiet = dict(kw, progress=False)

    def shard(start, stop):
      reps = encode(model, texts[start:stop], kind, **quiet)
      return (reps.vectors,) if kind == "dense" else (reps.tokens, reps.mask)

    arrays = build_store(
      folder,
      kind,
      len(texts),
      dim,
      width,
      shard,
      key,
      shard_size,
      progress=kw.get("progress", True),
    )
  else:
    log.info("document representations: cache hit %s", folder)
  return Representations(kind, **arrays)
