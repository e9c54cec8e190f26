"""A PLAID-style first stage for late interaction: centroids of the token vectors, candidate
generation and centroid pruning, then exact MaxSim on the candidates (Santhanam et al., "PLAID:
An Efficient Engine for Late Interaction Retrieval", CIKM 2022).

For collections too large for exact MaxSim (``search.py``, whose cost is every query token against
every document token). The index holds, for a token store (``store.py``):

  centroids    float32 [C, p]   spherical k-means (FAISS) on a sample of the document tokens
  codes        int32 [T]        each document token's nearest centroid, documents in order
  doc_offsets  int64 [N + 1]    document i's tokens are codes[doc_offsets[i]:doc_offsets[i+1]]
  ivf_docs     int32 [E]        per centroid, the documents with a token in it (ascending)
  ivf_offsets  int64 [C + 1]    centroid c's documents are ivf_docs[ivf_offsets[c]:ivf_offsets[c+1]]

Search, per query (``q`` its real token vectors, ``S = q @ centroids.T`` [Lq, C]):
  1. candidates: the documents of each query token's ``nprobe`` best centroids (PLAID's ncells);
  2. centroid interaction with pruning: a candidate's approximate score is
     ``sum_i max_j S[i, codes_j]`` over its tokens j whose centroid scores at least
     ``centroid_threshold`` for some query token (PLAID's centroid_score_threshold; a query token
     with no such document token adds 0); the ``ndocs`` best (ties to the lower index) go on;
  3. exact MaxSim on those from the store's full-precision vectors (``rerank.rerank``), so the
     scores returned are exact and only *which* documents are found is approximate.
With ``nprobe = C``, ``centroid_threshold = -inf`` and ``ndocs >= N`` the result is exact search's
(tests/retrieval/test_plaid.py). PLAID's residual compression is not implemented: stage 3 reads
the store, which stays on disk (``DiskRows``; only the candidates' rows are read).

The index is saved in a folder beside the store and reloaded when the store (its manifest key
and row count) and the build settings match; anything else is rebuilt, never read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from optical_jax.errors import UsageError
from optical_jax.io import new_folder_beside, replace_folder, write_json_atomic
from optical_jax.retrieval.ann import _faiss
from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.rerank import rerank
from optical_jax.retrieval.store import DiskRows, read_manifest

log = logging.getLogger(__name__)

FORMAT = 1
META = "plaid.json"
_ARRAYS = ("centroids", "codes", "doc_offsets", "ivf_docs", "ivf_offsets")
#: Documents whose tokens are read and assigned to centroids per step of the build.
ASSIGN_DOCS = 1024


@dataclasses.dataclass(frozen=True)
class PlaidConfig:
  """PLAID index settings (module docstring). Build settings change the index (a change
  rebuilds it); search settings only the search.

  num_centroids: C; 0 = ``2 ** floor(log2(16 * sqrt(T)))`` for T document tokens (PLAID's
    rule), at most ``T / 39`` (FAISS asks for 39 training points per centroid). Build.
  train_per_centroid: k-means trains on at most this many tokens per centroid (whole documents,
    drawn uniformly, seed ``seed``); 0 = every token. Build.
  kmeans_iters: k-means iterations (ColBERTv2/PLAID's indexer runs 4). Build.
  seed: the training sample's and k-means' seed. Build.
  nprobe: centroids per query token whose documents become candidates (PLAID's ncells). Search.
  centroid_threshold: document tokens whose centroid scores below this for every query token are
    pruned from the approximate score (PLAID's centroid_score_threshold). Search.
  ndocs: candidates kept by the approximate score and scored exactly (PLAID's ndocs). Search.
  """

  num_centroids: int = 0
  train_per_centroid: int = 64
  kmeans_iters: int = 4
  seed: int = 0
  nprobe: int = 4
  centroid_threshold: float = 0.4
  ndocs: int = 4096

  def __post_init__(self):
    for name in ("num_centroids", "train_per_centroid"):
      if getattr(self, name) < 0:
        raise UsageError(f"plaid setting {name}={getattr(self, name)}: must be >= 0")
    for name in ("kmeans_iters", "nprobe", "ndocs"):
      if getattr(self, name) < 1:
        raise UsageError(f"plaid setting {name}={getattr(self, name)}: must be >= 1")

  def build_settings(self) -> dict:
    return {
      k: getattr(self, k) for k in ("num_centroids", "train_per_centroid", "kmeans_iters")
    } | {"seed": self.seed}


@dataclasses.dataclass
class PlaidIndex:
  """The arrays of the module docstring, and ``meta`` (what it was built from and how)."""

  centroids: np.ndarray
  codes: np.ndarray
  doc_offsets: np.ndarray
  ivf_docs: np.ndarray
  ivf_offsets: np.ndarray
  meta: dict

  @property
  def num_docs(self) -> int:
    return len(self.doc_offsets) - 1

  def nbytes(self) -> int:
    return sum(getattr(self, name).nbytes for name in _ARRAYS)


def centroid_count(num_tokens: int, cfg: PlaidConfig) -> int:
  """C for ``num_tokens`` document tokens (:class:`PlaidConfig` ``num_centroids``)."""
  want = cfg.num_centroids or 2 ** int(math.floor(math.log2(max(16 * math.sqrt(num_tokens), 1))))
  return max(1, min(want, num_tokens // 39 if num_tokens >= 39 else 1))


def _real_tokens(tokens, mask, rows: np.ndarray) -> np.ndarray:
  """The real token vectors of documents ``rows`` (ascending), in order: float32 [t, p]."""
  t = np.asarray(tokens[rows], np.float32)
  m = np.asarray(mask[rows], bool)
  return t[m]


def build_plaid(docs: Representations, cfg: PlaidConfig, source: dict, progress: bool = True):
  """docs: maxsim representations (``tokens`` [N, L, p], ``mask`` [N, L]; a store's
  ``DiskRows`` are read in steps of ``ASSIGN_DOCS`` documents) -> :class:`PlaidIndex`.
  ``source`` identifies the store (recorded in ``meta``; :func:`open_plaid` compares it)."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if docs.kind != "maxsim":
    raise UsageError("a PLAID index is built over token vectors: use --ranker maxsim")
  faiss = _faiss()
  mask = np.asarray(docs.mask, bool)
  n, p = len(mask), docs.tokens.shape[-1]
  lengths = mask.sum(axis=1).astype(np.int64)
  doc_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  num_tokens = int(doc_offsets[-1])
  if num_tokens == 0:
    raise UsageError("the documents have no tokens to index")
  c = centroid_count(num_tokens, cfg)
  rng = np.random.default_rng(cfg.seed)
  want = cfg.train_per_centroid * c if cfg.train_per_centroid else num_tokens
  if want >= num_tokens:
    sample_rows = np.arange(n)
  else:
    order = rng.permutation(n)
    take = int(np.searchsorted(np.cumsum(lengths[order]), want)) + 1
    sample_rows = np.sort(order[:take])
  sample = np.concatenate(
    [
      _real_tokens(docs.tokens, mask, sample_rows[i : i + ASSIGN_DOCS])
      for i in range(0, len(sample_rows), ASSIGN_DOCS)
    ]
  )
  log.info("PLAID: k-means of %d centroids on %d of %d tokens", c, len(sample), num_tokens)
  kmeans = faiss.Kmeans(
    p,
    c,
    niter=cfg.kmeans_iters,
    seed=cfg.seed,
    spherical=True,
    verbose=False,
    min_points_per_centroid=1,
  )
  kmeans.train(np.ascontiguousarray(sample))
  centroids = np.ascontiguousarray(kmeans.centroids, np.float32)
  quantizer = faiss.IndexFlatIP(p)
  quantizer.add(centroids)
  codes = np.empty(num_tokens, np.int32)
  bar = tqdm(total=n, desc="plaid", unit="doc", disable=not progress, file=sys.stderr)
  for s in range(0, n, ASSIGN_DOCS):
    rows = np.arange(s, min(n, s + ASSIGN_DOCS))
    x = _real_tokens(docs.tokens, mask, rows)
    if len(x):
      _, nearest = quantizer.search(np.ascontiguousarray(x), 1)
      codes[doc_offsets[rows[0]] : doc_offsets[rows[-1] + 1]] = nearest[:, 0]
    bar.update(len(rows))
  bar.close()
  doc_of_token = np.repeat(np.arange(n, dtype=np.int64), lengths)
  pairs = np.unique(codes.astype(np.int64) * n + doc_of_token)  # (centroid, document), sorted
  ivf_docs = (pairs % n).astype(np.int32)
  ivf_offsets = np.concatenate([[0], np.cumsum(np.bincount(pairs // n, minlength=c))])
  meta = {
    "format": FORMAT,
    "source": source,
    "build": cfg.build_settings(),
    "num_centroids": c,
    "num_docs": n,
    "num_tokens": num_tokens,
    "dim": int(p),
  }
  return PlaidIndex(centroids, codes, doc_offsets, ivf_docs, ivf_offsets.astype(np.int64), meta)


def save_plaid(index: PlaidIndex, folder: Path) -> None:
  """Writes the index to ``folder`` whole or not at all (built aside, then swapped in)."""
  folder = Path(folder)
  tmp = new_folder_beside(folder)
  try:
    for name in _ARRAYS:
      np.save(tmp / f"{name}.npy", getattr(index, name))
    write_json_atomic(tmp / META, index.meta)
    replace_folder(tmp, folder)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def open_plaid(folder: Path, cfg: PlaidConfig, source: dict) -> Optional[PlaidIndex]:
  """The index saved in ``folder`` if it was built from ``source`` with ``cfg``'s build
  settings and its arrays are whole; else None (with the reason logged)."""
  folder = Path(folder)
  try:
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return None
  if meta.get("format") != FORMAT or meta.get("source") != source:
    log.info("PLAID index %s was built from another store; building again", folder)
    return None
  if meta.get("build") != cfg.build_settings():
    log.info("PLAID index %s has other build settings; building again", folder)
    return None
  try:
    arrays = {name: np.load(folder / f"{name}.npy") for name in _ARRAYS}
  except (OSError, ValueError) as e:
    log.warning("PLAID index %s is damaged (%s); building again", folder, e)
    return None
  c, n, t = meta["num_centroids"], meta["num_docs"], meta["num_tokens"]
  shapes_ok = (
    arrays["centroids"].shape == (c, meta["dim"])
    and arrays["codes"].shape == (t,)
    and arrays["doc_offsets"].shape == (n + 1,)
    and arrays["ivf_offsets"].shape == (c + 1,)
    and arrays["ivf_docs"].shape == (int(arrays["ivf_offsets"][-1]),)
    and int(arrays["doc_offsets"][-1]) == t
  )
  if not shapes_ok:
    log.warning("PLAID index %s does not match its own description; building again", folder)
    return None
  return PlaidIndex(meta=meta, **arrays)


def load_or_build(
  folder: Path, docs: Representations, cfg: PlaidConfig, source: dict, progress: bool = True
) -> PlaidIndex:
  """:func:`open_plaid`, else :func:`build_plaid` then :func:`save_plaid`."""
  index = open_plaid(folder, cfg, source)
  if index is None:
    index = build_plaid(docs, cfg, source, progress)
    save_plaid(index, folder)
  else:
    log.info("PLAID index %s: reused", folder)
  return index


def index_for(docs: Representations, cfg: PlaidConfig, progress: bool = True) -> PlaidIndex:
  """The PLAID index of ``docs``: for a token store on disk (``encode_cached``), saved in the
  folder ``<store>.plaid`` beside it and reused while the store and the build settings match;
  for documents in memory, built and not saved."""
  if isinstance(docs.tokens, DiskRows):
    store = docs.tokens.path.parent
    manifest = read_manifest(store) or {}
    source = {"key": manifest.get("key"), "rows": manifest.get("rows")}
    return load_or_build(store.with_name(f"{store.name}.plaid"), docs, cfg, source, progress)
  return build_plaid(docs, cfg, {"in_memory": True}, progress)


def _token_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The token positions ``starts[i] + [0, lengths[i])`` for every i, concatenated."""
  total = int(lengths.sum())
  shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
  return np.arange(total, dtype=np.int64) + shift


def query_candidates(
  index: PlaidIndex, scores: np.ndarray, cfg: PlaidConfig
) -> Tuple[np.ndarray, np.ndarray]:
  """One query: scores [lq, C] (its real tokens against the centroids) -> (candidate document
  indices ascending [K], their approximate scores [K]) after stages 1 and 2."""
  c = scores.shape[1]
  probe = min(cfg.nprobe, c)
  cells = np.unique(np.argpartition(-scores, probe - 1, axis=1)[:, :probe])
  lists = [index.ivf_docs[index.ivf_offsets[x] : index.ivf_offsets[x + 1]] for x in cells]
  cand = np.unique(np.concatenate(lists)).astype(np.int64)
  starts = index.doc_offsets[cand]
  lengths = index.doc_offsets[cand + 1] - starts
  codes = index.codes[_token_rows(starts, lengths)]
  kept = scores.max(axis=0) >= cfg.centroid_threshold  # [C]
  s = np.where(kept[codes][None, :], scores[:, codes], -np.inf)  # [lq, tokens of cand]
  seg = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  best = np.maximum.reduceat(s, seg, axis=1)  # [lq, K]: every candidate has >= 1 token
  approx = np.where(np.isfinite(best), best, 0.0).sum(axis=0)
  return cand, approx.astype(np.float32)


def plaid_candidates(
  index: PlaidIndex, queries: Representations, cfg: PlaidConfig, progress: bool = True
) -> Tuple[np.ndarray, Dict[str, float]]:
  """queries: maxsim (``tokens`` [Q, Lq, p], ``mask``) -> (int [Q, ndocs'] candidate document
  indices, -1 padded; stats: mean candidates after stage 1 and kept after stage 2)."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if queries.kind != "maxsim":
    raise UsageError("a PLAID index searches token vectors: use --ranker maxsim")
  if queries.tokens.shape[-1] != index.centroids.shape[1]:
    raise UsageError(
      f"queries are {queries.tokens.shape[-1]}-dim, the PLAID index {index.centroids.shape[1]}-dim"
    )
  nq = len(queries)
  out = np.full((nq, min(cfg.ndocs, index.num_docs)), -1, np.int64)
  stage1 = np.zeros(nq)
  bar = tqdm(total=nq, desc="plaid", unit="query", disable=not progress, file=sys.stderr)
  for qi in range(nq):
    q = np.asarray(queries.tokens[qi], np.float32)[np.asarray(queries.mask[qi], bool)]
    if len(q):
      cand, approx = query_candidates(index, q @ index.centroids.T, cfg)
      stage1[qi] = len(cand)
      if len(cand) > out.shape[1]:
        cand = np.sort(cand[np.argsort(-approx, kind="stable")[: out.shape[1]]])
      out[qi, : len(cand)] = cand
    bar.update(1)
  bar.close()
  stats = {
    "candidates_stage1": float(stage1.mean()) if nq else 0.0,
    "candidates_exact": float((out >= 0).sum(axis=1).mean()) if nq else 0.0,
  }
  return out, stats


def plaid_search(
  index: PlaidIndex,
  queries: Representations,
  docs: Representations,
  k: int,
  cfg: PlaidConfig,
  progress: bool = True,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
  """Stages 1-3 (module docstring) -> (scores [Q, k'], doc indices [Q, k'], stats) as
  ``search.search`` returns them (``k' = min(k, N)``, -1 where a query has fewer)."""
  if index.num_docs != len(docs):
    raise UsageError(f"the PLAID index covers {index.num_docs} documents, the store {len(docs)}")
  cand, stats = plaid_candidates(index, queries, cfg, progress)
  scores, ids = rerank(queries, docs, cand, k=k, progress=progress)
  return scores, ids, stats
