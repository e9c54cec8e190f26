"""Exact re-ranking: each query's first-stage candidates scored exactly, dense or MaxSim, at a
cost that grows with the candidates rather than the collection (``eval.py --first_stage``, the
PLAID first stage's last stage, ``plaid.py``). Same run as :func:`search.search` with
``allowed`` = the candidates (tests/retrieval/test_search_memory.py).
"""

from __future__ import annotations

import functools
import sys
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.models.scoring import maxsim_scores
from optical_jax.retrieval.host_arrays import aligned_empty, device_copy, hand_over
from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.search import MAXSIM_BLOCK_BYTES, _bucket, search


@functools.partial(jax.jit, static_argnames=("kind",))
def _candidate_scores(kind, q, q_mask, d, d_mask, valid):
  """q [B, d] / [B, Lq, p] float32; each query's own candidates d [B, K, d] / [B, K, Ld, p]
  (float16 or float32: cast here, not on the host) and valid [B, K] -> scores [B, K] float32
  (-inf where not valid)."""
  if kind == "dense":
    s = jnp.einsum("qp,qkp->qk", q, d.astype(q.dtype))
  else:  # one query at a time against its own candidates (XLA CPU ran the vmapped einsum slowly)
    s = jax.lax.map(
      lambda a: maxsim_scores(a[0][None], a[1][None], a[2].astype(q.dtype), a[3])[0],
      (q, q_mask, d, d_mask),
    )
  return jnp.where(valid, s, -jnp.inf)


#: MaxSim re-ranking scores at most this many of a query's candidates per slice (each slice cut
#: to its longest text, the candidates taken shortest first).
RERANK_SLICE = 256
#: MaxSim re-ranking whose queries have on average at least 1/RERANK_STREAM of the collection as
#: candidates streams the collection past them once (:func:`search` with ``allowed``) instead of
#: gathering each query's candidates: gathering re-reads a document once per query that has it,
#: and at PLAID's 4,096 candidates of AfriQA's 3,071 passages (every one a candidate of every
#: question) that did not finish its first 256 questions in 4 minutes (2026-12-07, AMD, 2 cores).
RERANK_STREAM = 8


def doc_lengths(docs: Representations, chunk: int = 4096) -> np.ndarray:
  """int [N]: each document's real tokens (MaxSim representations; the mask read in chunks)."""
  n = len(docs)
  out = np.empty(n, np.int64)
  for s in range(0, n, chunk):
    out[s : s + chunk] = np.asarray(docs.mask[s : min(n, s + chunk)]).sum(axis=1)
  return out


def rerank(
  queries: Representations,
  docs: Representations,
  candidates: np.ndarray,
  k: int = 1000,
  query_batch: int = 256,
  progress: bool = True,
  memory_budget: int = MAXSIM_BLOCK_BYTES,
  lengths: Optional[np.ndarray] = None,
) -> (np.ndarray, np.ndarray):
  """Scores only each query's first-stage candidates. candidates int [Q, K] (document indices,
  -1 = none) -> (scores [Q, k'], doc indices [Q, k']) as :func:`search` returns them with
  ``allowed`` = the candidates (``k' = min(k, N)``, -1 where a query has fewer; ties to the lower
  document index), but the cost grows with K, not with the collection (candidates covering
  1/:data:`RERANK_STREAM` of the collection or more are scored by :func:`search` with
  ``allowed``, which reads each document once).

  The candidates' vectors are gathered per query batch (read from disk for a store). For MaxSim
  each query's candidates are taken shortest first, in slices cut to their longest text (as
  :func:`search` cuts its blocks) and small enough that the gathered float32 token vectors stay
  within ``memory_budget`` bytes; ``lengths`` (int [N], each document's real tokens; None =
  read from the mask, :func:`doc_lengths`) orders them."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if queries.kind != docs.kind:
    raise ValueError(f"query representations are {queries.kind}, documents {docs.kind}")
  kk = min(k, len(docs))
  cand = np.asarray(candidates, np.int64)
  if docs.kind == "maxsim" and (cand >= 0).sum() * RERANK_STREAM >= len(docs) * len(cand) > 0:
    allowed = np.zeros((len(cand), len(docs)), bool)
    rows, cols = np.nonzero(cand >= 0)
    allowed[rows, cand[rows, cols]] = True
    return search(
      queries,
      docs,
      k,
      allowed=allowed,
      query_batch=query_batch,
      progress=progress,
      memory_budget=memory_budget,
    )
  if docs.kind == "maxsim":
    lengths = doc_lengths(docs) if lengths is None else np.asarray(lengths)
    # shortest first (none last), so that each slice is cut to texts of similar length
    key = np.where(cand >= 0, lengths[np.maximum(cand, 0)], np.iinfo(np.int64).max)
    cand = np.take_along_axis(cand, np.argsort(key, axis=1, kind="stable"), axis=1)
  else:
    cand = np.take_along_axis(cand, np.argsort(cand < 0, axis=1, kind="stable"), axis=1)
  out_s = np.full((len(queries), kk), -np.inf, np.float32)
  out_i = np.full((len(queries), kk), -1, np.int64)
  bar = tqdm(
    total=len(queries), desc="re-rank", unit="query", disable=not progress, file=sys.stderr
  )
  for qs in range(0, len(queries), query_batch):
    qsl = slice(qs, qs + query_batch)
    if docs.kind == "dense":
      q, qm = jnp.asarray(queries.vectors[qsl], jnp.float32), None
    else:
      q, qm = jnp.asarray(queries.tokens[qsl], jnp.float32), jnp.asarray(queries.mask[qsl])
    c_all = cand[qsl]
    # the -1 pads are last: drop the columns none of this batch fills (a first stage returns
    # its ``ndocs`` columns however few it found)
    c_all = c_all[:, : max(1, int((c_all >= 0).sum(axis=1).max()))]
    cols = c_all.shape[1]
    if docs.kind == "maxsim":  # slices of a bucketed width (-1 padded), so few shapes compile
      cols = _bucket(min(cols, RERANK_SLICE), RERANK_SLICE)
      c_all = np.pad(c_all, ((0, 0), (0, -c_all.shape[1] % cols)), constant_values=-1)
    scores = np.full(c_all.shape, -np.inf, np.float32)
    for cs in range(0, c_all.shape[1], cols):
      c = c_all[:, cs : cs + cols]
      scores[:, cs : cs + c.shape[1]] = _rerank_slice(docs, q, qm, c, memory_budget)
    # best first; ties to the lower document index (empty slots: -inf, then last)
    ids = np.where(c_all >= 0, c_all, np.iinfo(np.int64).max)
    order = np.lexsort((ids, -scores), axis=1)[:, :kk]
    top_s = np.take_along_axis(scores, order, axis=1)
    top_i = np.take_along_axis(c_all, order, axis=1)
    out_s[qsl, : top_s.shape[1]] = top_s
    out_i[qsl, : top_i.shape[1]] = np.where(np.isfinite(top_s), top_i, -1)
    bar.update(q.shape[0])
  bar.close()
  return out_s, out_i


def _rerank_slice(docs: Representations, q, qm, c: np.ndarray, memory_budget: int) -> np.ndarray:
  """Scores [B, K] of one query batch against its candidates ``c`` [B, K] (-1 = none: -inf).
  MaxSim: the candidates' token vectors are cut to the slice's longest text (a bucket of it, so
  few shapes compile), and the queries go in groups whose gathered float32 vectors (and the
  ``[K, L, Lq]`` similarities) stay within ``memory_budget`` bytes."""
  valid = c >= 0
  if docs.kind == "dense":
    rows = np.maximum(c, 0).reshape(-1)
    d = device_copy(np.asarray(docs.vectors[rows]).reshape(c.shape + (-1,)))
    return np.asarray(_candidate_scores("dense", q, None, d, None, jnp.asarray(valid)))
  # the -1 slots' masks all False, so they neither read a document nor lengthen the cut
  dm_all = np.asarray(docs.mask[np.maximum(c, 0).reshape(-1)]).reshape(c.shape + (-1,))
  dm_all &= valid[..., None]
  cut = _bucket(int(dm_all.any(axis=(0, 1)).nonzero()[0].max(initial=0)) + 1, dm_all.shape[-1])
  per_query = c.shape[1] * cut * (docs.tokens.shape[2] + q.shape[1]) * 4
  group = max(1, memory_budget // per_query)
  out = np.empty(c.shape, np.float32)
  for g in range(0, c.shape[0], group):
    cg = c[g : g + group]
    vg = cg >= 0
    rows = cg[vg]  # only real candidates are read; the -1 slots stay zeros (and masked)
    d = aligned_empty(cg.shape + (cut, docs.tokens.shape[2]), docs.tokens.dtype)
    if isinstance(docs.tokens, np.ndarray):  # in memory or a memmap: gather the cut columns only
      d[vg] = docs.tokens[rows, :cut]
    else:  # a store on disk reads whole rows
      d[vg] = docs.tokens[rows][:, :cut]
    d[~vg] = 0
    d = hand_over(d)  # the store's dtype: cast on the device
    s = _candidate_scores(
      "maxsim",
      q[g : g + group],
      qm[g : g + group],
      d,
      jnp.asarray(dm_all[g : g + group, :, :cut]),
      jnp.asarray(valid[g : g + group]),
    )
    out[g : g + group] = np.asarray(s)
  return out


def candidates_from_run(
  first_stage: Dict[str, Dict[str, float]], qids: Sequence[str], doc_ids: Sequence[str]
) -> np.ndarray:
  """int [Q, K]: the collection indices of the documents each query's first-stage run
  retrieved (K: the longest run; -1 pads; documents outside the collection are left out)."""
  pos = {d: i for i, d in enumerate(doc_ids)}
  rows = [[pos[d] for d in first_stage.get(qid, {}) if d in pos] for qid in qids]
  out = np.full((len(qids), max((len(r) for r in rows), default=0)), -1, np.int64)
  for qi, r in enumerate(rows):
    out[qi, : len(r)] = r
  return out
