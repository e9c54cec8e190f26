"""Document and query representations for search, with an on-disk document cache.

Dense: one L2-normalised vector per text, ``[N, d]`` float32.
Late interaction (MaxSim): normalised token vectors padded to the longest
text, ``[N, L, p]`` float16 on disk and float32 on device, plus ``mask [N, L]``.

The document side is encoded once per (model, texts, settings) and cached as
``.npz`` under ``cache_dir`` keyed by a hash of the model's parameters, the
texts and the settings; the file is written atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from optical_jax.encode import encode_texts, run_packed
from optical_jax.loading.load import LoadedEncoder
from optical_jax.models.retrieval import token_embeddings
from optical_jax.packing import TOKENS_PER_TEXT

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


def fingerprint(model: LoadedEncoder) -> str:
  """A hash of the model's parameters (every leaf's bytes), for cache keys."""
  h = hashlib.sha256(model.source.encode())
  for leaf in jax.tree_util.tree_leaves((model.params, model.head)):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()[:16]


def _token_reps(model: LoadedEncoder, texts: Sequence[str], prefix: str, max_length: int,
                batch_size: int, progress: bool, desc: str) -> Representations:
  """Token vectors of every text, encoded packed (``optical_jax/packing.py``): several texts
  per row, each getting the states it gets alone, then cut back out to ``[N, L, p]``."""
  params = model.retrieval_params()
  if params["head"] is None:
    params = {"encoder": params["encoder"]}
  fn = functools.partial(jax.jit(lambda p, ids, mask, seg: token_embeddings(
      model.module, p, ids, mask, segment_ids=seg)), params)
  ids, _ = model.tokenizer.encode_ids(texts, max_length, prefix)
  width = max((len(x) for x in ids), default=1)
  dim = model.head["kernel"].shape[1] if model.head is not None else model.config.hidden_size
  tokens = np.zeros((len(texts), width, dim), np.float16)
  mask = np.zeros((len(texts), width), bool)
  for b, out in run_packed(fn, ids, model.tokenizer.pad_id, max_length,
                           batch_size * TOKENS_PER_TEXT, progress, desc):
    for i, r, start, n in zip(b.text_index, b.row, b.start, b.length):
      tokens[i, :n] = out[r, start:start + n]
      mask[i, :n] = True
  return Representations("maxsim", tokens=tokens, mask=mask)


def encode(model: LoadedEncoder, texts: Sequence[str], kind: str, *, prefix: str = "",
           max_length: Optional[int] = None, batch_size: int = 32, pooling: Optional[str] = None,
           progress: bool = True, desc: str = "encode") -> Representations:
  """Representations of ``texts`` for ranker ``kind`` (``"dense"`` or ``"maxsim"``)."""
  max_length = min(max_length or model.tokenizer.max_length, model.tokenizer.max_length)
  if kind == "dense":
    vecs = encode_texts(model, texts, pooling=pooling, max_length=max_length, prefix=prefix,
                        batch_size=batch_size, normalize=True, progress=progress)
    return Representations("dense", vectors=vecs)
  if kind == "maxsim":
    return _token_reps(model, texts, prefix, max_length, batch_size, progress, desc)
  raise ValueError(f"ranker {kind!r} not in ('dense', 'maxsim')")


def encode_cached(model: LoadedEncoder, texts: Sequence[str], kind: str, cache_dir, **kw
                  ) -> Representations:
  """:func:`encode` with the result cached under ``cache_dir`` (None = no cache)."""
  if cache_dir is None:
    return encode(model, texts, kind, **kw)
  h = hashlib.sha256()
  h.update(fingerprint(model).encode())
  h.update(repr((kind, sorted((k, v) for k, v in kw.items() if k not in ("progress", "desc",
                                                                          "batch_size")))).encode())
  for t in texts:
    h.update(t.encode("utf-8") + b"\0")
  path = Path(cache_dir) / f"{kind}-{h.hexdigest()[:24]}.npz"
  if path.is_file():
    try:
      with np.load(path) as z:
        if kind == "dense":
          cached = Representations("dense", vectors=z["vectors"])
        else:
          cached = Representations("maxsim", tokens=z["tokens"], mask=z["mask"])
      rows = len(cached.vectors if kind == "dense" else cached.tokens)
      if rows != len(texts):
        raise ValueError(f"{rows} rows for {len(texts)} texts")
      log.info("document representations: cache hit %s", path)
      return cached
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
      # Truncated (a kill while copying it, a full disk) or otherwise unreadable: rebuild.
      log.warning("document representations: cache file %s is unreadable (%s: %s); "
                  "encoding again", path, type(e).__name__, e)
  reps = encode(model, texts, kind, **kw)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
  with os.fdopen(fd, "wb") as fh:
    if kind == "dense":
      np.savez(fh, vectors=reps.vectors)
    else:
      np.savez(fh, tokens=reps.tokens, mask=reps.mask)
  os.replace(tmp, path)
  return reps
