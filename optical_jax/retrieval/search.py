"""Exact search on the device, in document chunks, keeping a running top-k.

Scores: dense dot product of normalised vectors, or MaxSim
``sum_i max_j <q_i, d_j>`` over real tokens. Documents are scored in chunks
of ``chunk_size`` (the last chunk padded and masked to -inf) so memory stays
``O(Q * chunk)`` and one program is compiled. Optional re-ranking restricts
each query to the documents of a first-stage run: :func:`rerank` scores only those
(its cost grows with the run's depth, not the collection), :func:`search` with
``allowed`` scans everything and masks (for tests and small collections).
"""

from __future__ import annotations

import functools
import sys
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.models.scoring import maxsim_scores
from optical_jax.retrieval.host_arrays import device_copy
from optical_jax.retrieval.host_select import HostTopK, dense_search_host_select
from optical_jax.retrieval.index import Representations


@functools.partial(jax.jit, static_argnames=("kind",))
def _chunk_scores(kind, q, q_mask, d, d_mask, d_valid):
  """q [Q, d] or [Q, Lq, p]; d [C, d] or [C, Ld, p]; d_valid [C] -> [Q, C]."""
  if kind == "dense":
    s = q @ d.T
  else:
    s = maxsim_scores(q, q_mask, d, d_mask)
  return jnp.where(d_valid[None, :], s, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("k",))
def _merge_topk(vals, idx, new_vals, new_idx, k):
  v = jnp.concatenate([vals, new_vals], axis=1)
  i = jnp.concatenate([idx, new_idx], axis=1)
  top_v, pos = jax.lax.top_k(v, k)
  return top_v, jnp.take_along_axis(i, pos, axis=1)


#: Default bound on MaxSim's similarity block ``[queries, docs, query tokens, doc tokens]``
#: float32: 512 MiB fits a 16 GB GPU and this 24 GB CPU machine beside the token store.
MAXSIM_BLOCK_BYTES = 512 * 2**20


def maxsim_blocks(
  num_queries: int,
  num_docs: int,
  query_tokens: int,
  doc_tokens: int,
  query_batch: int,
  chunk_size: int,
  budget: int = MAXSIM_BLOCK_BYTES,
):
  """(query batch, document chunk) for MaxSim whose similarity block stays within ``budget``
  bytes: the document chunk shrinks first (down to 8), then the query batch (down to 1)."""
  per_pair = max(query_tokens, 1) * max(doc_tokens, 1) * 4
  qb, chunk = min(query_batch, max(num_queries, 1)), min(chunk_size, max(num_docs, 1))
  while qb * chunk * per_pair > budget and chunk > 8:
    chunk = max(8, chunk // 2)
  while qb * chunk * per_pair > budget and qb > 1:
    qb = max(1, qb // 2)
  return qb, chunk


def search(
  queries: Representations,
  docs: Representations,
  k: int = 1000,
  chunk_size: int = 1024,
  allowed: Optional[np.ndarray] = None,
  query_batch: int = 256,
  progress: bool = True,
  memory_budget: int = MAXSIM_BLOCK_BYTES,
) -> (np.ndarray, np.ndarray):
  """Top-``k`` documents per query. Returns (scores [Q, k'], doc indices [Q, k']), best first,
  ``k' = min(k, N)``; entries scored -inf (not allowed) come back as index -1.

  Args:
    allowed: optional bool [Q, N]: restrict each query to these documents (re-ranking).
    memory_budget: MaxSim only: bytes of the float32 similarity block of one (query batch,
      document chunk); ``query_batch`` and ``chunk_size`` shrink to fit (:func:`maxsim_blocks`).

  Dense search on a CPU backend takes its own block sizes (``host_select.HOST_SELECT_CHUNK``,
  ``HOST_SELECT_QUERIES``; ``host_select.dense_search_host_select``); on accelerators
  ``chunk_size`` and ``query_batch`` apply.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if queries.kind != docs.kind:
    raise ValueError(f"query representations are {queries.kind}, documents {docs.kind}")
  n = len(docs)
  kk = min(k, n)
  chunk = min(chunk_size, n)
  if docs.kind == "maxsim":
    return _maxsim_search(queries, docs, kk, chunk, allowed, query_batch, progress, memory_budget)
  if jax.default_backend() == "cpu":
    return dense_search_host_select(queries, docs, kk, allowed, progress)
  all_s, all_i = [], []
  bar = tqdm(total=len(queries), desc="search", unit="query", disable=not progress, file=sys.stderr)
  for qs in range(0, len(queries), query_batch):
    qsl = slice(qs, qs + query_batch)
    if queries.kind == "dense":
      q, qm = jnp.asarray(queries.vectors[qsl], jnp.float32), None
    else:
      q = jnp.asarray(queries.tokens[qsl], jnp.float32)
      qm = jnp.asarray(queries.mask[qsl])
    nq = q.shape[0]
    vals = jnp.full((nq, kk), -jnp.inf)
    idx = jnp.full((nq, kk), -1, jnp.int32)
    for ds in range(0, n, chunk):
      sl = np.arange(ds, ds + chunk)
      valid = sl < n
      sl = np.minimum(sl, n - 1)
      if docs.kind == "dense":
        d, dm = jnp.asarray(docs.vectors[sl], jnp.float32), None
      else:
        d = jnp.asarray(docs.tokens[sl], jnp.float32)
        dm = jnp.asarray(docs.mask[sl])
      s = _chunk_scores(docs.kind, q, qm, d, dm, jnp.asarray(valid))
      if allowed is not None:
        s = jnp.where(jnp.asarray(allowed[qsl][:, sl] & valid[None]), s, -jnp.inf)
      ids = jnp.broadcast_to(jnp.asarray(sl, jnp.int32), s.shape)
      vals, idx = _merge_topk(vals, idx, s, ids, kk)
    vals, idx = np.asarray(vals), np.asarray(idx)
    idx = np.where(np.isfinite(vals), idx, -1)
    all_s.append(vals)
    all_i.append(idx)
    bar.update(nq)
  bar.close()
  return np.concatenate(all_s), np.concatenate(all_i)


def _bucket(length: int, width: int) -> int:
  """Token rows a block of texts of at most ``length`` tokens is cut to: the next of 16, 24,
  32, 48, 64, 96, 128, 192, ... (steps of at most 1.5x, so few shapes are compiled), at most
  ``width`` (the stored rows)."""
  b = 16
  while b < length:
    b = b * 3 // 2 if b & (b - 1) == 0 else b * 4 // 3
  return max(1, min(b, width))


#: MaxSim's token similarities are computed in tiles of at most this many query-token rows x
#: document-token columns (float32, 12 MiB: the product's output stays in the CPU's cache before
#: the masked max reads it; one [B*Lq, C*Ld] product ran at 90 GFLOP/s, these tiles at 150-159 on
#: the 2-core AMD machine, ``docs/PERFORMANCE.md``).
MAXSIM_TILE = (1536, 2048)
#: At most this many queries share one tile of query-token rows (:func:`pack_query_tiles`).
TILE_QUERIES = 128


def pack_query_tiles(lengths: np.ndarray, order: np.ndarray, rows: int, per_tile: int):
  """Queries packed whole, in ``order``, into tiles of ``rows`` token rows and at most
  ``per_tile`` queries, with no padding between them (a tile ends when the next query does not
  fit). Returns ``(tiles, tile_of, slot_of)``: a list of arrays of query indices, one per tile,
  and for every query its tile and its slot in it ([Q] int). A query of more than ``rows``
  tokens is an error (the caller makes ``rows`` at least the longest)."""
  tiles, cur, used = [], [], 0
  for qi in order:
    n = int(lengths[qi])
    if n > rows:
      raise ValueError(f"a query of {n} tokens does not fit a tile of {rows} rows")
    if cur and (used + n > rows or len(cur) == per_tile):
      tiles.append(np.asarray(cur))
      cur, used = [], 0
    cur.append(qi)
    used += n
  if cur:
    tiles.append(np.asarray(cur))
  tile_of = np.zeros(len(lengths), np.int64)
  slot_of = np.zeros(len(lengths), np.int64)
  for t, qs in enumerate(tiles):
    tile_of[qs], slot_of[qs] = t, np.arange(len(qs))
  return tiles, tile_of, slot_of


def _tile_rows(queries: Representations, tiles, rows: int):
  """The packed query tiles: token rows [T, rows, p] float32 (zeros after the last query) and
  each row's slot [T, rows] int32 (its query's place in the tile; -1 = padding)."""
  p = queries.tokens.shape[2]
  out = np.zeros((len(tiles), rows, p), np.float32)
  slot = np.full((len(tiles), rows), -1, np.int32)
  for t, qs in enumerate(tiles):
    at = 0
    for j, qi in enumerate(qs):
      m = np.asarray(queries.mask[qi], bool)
      toks = np.asarray(queries.tokens[qi], np.float32)[m]
      out[t, at : at + len(toks)] = toks
      slot[t, at : at + len(toks)] = j
      at += len(toks)
  return out, slot


def _tile_scores(q_rows, q_slot, d, d_mask):
  """q_rows [R, p] (the packed tokens of a tile's queries), q_slot [R] (each row's query slot,
  -1 = padding), d [c, Ld, p], d_mask [c, Ld] -> [TILE_QUERIES, c]: every token's best match in
  each document (a document without tokens: 0), summed over each query's tokens by a one-hot
  product."""
  c, ld, p = d.shape
  sim = jax.lax.dot_general(q_rows, d.reshape(c * ld, p), (((1,), (1,)), ((), ())))
  best = jnp.max(jnp.where(d_mask[None], sim.reshape(-1, c, ld), -jnp.inf), axis=-1)
  best = jnp.where(jnp.isfinite(best), best, 0.0)  # [R, c]
  onehot = (q_slot[None, :] == jnp.arange(TILE_QUERIES)[:, None]).astype(best.dtype)
  return onehot @ best


def _pad_to(x, n: int):
  """x padded with zeros (False) along axis 0 to ``n`` rows."""
  return jnp.pad(x, [(0, n - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


@jax.jit
def _maxsim_block(q_rows, q_slot, d, d_mask):
  """MaxSim of packed query tiles against a document block: q_rows [T, R, p], q_slot [T, R]
  (:func:`_tile_rows`), d [C, Ld, p], d_mask [C, Ld] -> [T, TILE_QUERIES, C] float32 (a tile's
  query slot j, document c). The token similarities are ``[R, p] x [p, c*Ld]`` products over
  tiles of :data:`MAXSIM_TILE` (documents padded, masked, to whole tiles), each followed by the
  masked max over a document's tokens and the sum over each query's tokens, so no
  ``[B, C, Lq, Ld]`` block is held and no query is padded to another's length. Same scores as
  :func:`maxsim_scores` (a document without tokens scores 0)."""
  cd, ld, _ = d.shape
  sub = max(1, min(cd, MAXSIM_TILE[1] // ld))
  nd = -(-cd // sub)
  ds = _pad_to(d, nd * sub).reshape(nd, sub, ld, -1)
  dms = _pad_to(d_mask.astype(bool), nd * sub).reshape(nd, sub, ld)

  def per_tile(args):
    rows, slot = args
    out = jax.lax.map(lambda a: _tile_scores(rows, slot, a[0], a[1]), (ds, dms))  # [nd, Qt, sub]
    return out.transpose(1, 0, 2).reshape(TILE_QUERIES, nd * sub)

  return jax.lax.map(per_tile, (q_rows, q_slot))[:, :, :cd]


def _maxsim_search(
  queries: Representations,
  docs: Representations,
  kk: int,
  chunk_size: int,
  allowed: Optional[np.ndarray],
  query_batch: int,
  progress: bool,
  memory_budget: int,
) -> (np.ndarray, np.ndarray):
  """:func:`search` for MaxSim without scoring padding, reading the documents once. Token arrays
  are padded to the longest text, which for passages is mostly padding (``docs/PERFORMANCE.md``,
  the AfriQA run), so documents are taken in order of length and each block is cut to its
  longest text (:func:`_bucket`): shorter documents come in larger chunks within the same
  budget. Queries are packed whole into tiles of token rows (:func:`pack_query_tiles`), so no
  query is padded to another's length. Every query tile stays on the device while the document
  blocks stream past once (a budget too small for all the tiles splits them into passes); each
  block is scored against every tile by :func:`_maxsim_block` and the top-k kept on the host
  (:class:`~optical_jax.retrieval.host_select.HostTopK`). Scores, documents and their order (a
  tie to the lower index) are those of scoring every padded pair."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  n, nq = len(docs), len(queries)
  q_len = np.asarray(queries.mask).sum(axis=1)
  d_len = np.concatenate(
    [np.asarray(docs.mask[s : s + 4096]).sum(axis=1) for s in range(0, n, 4096)]
  )
  q_order = np.argsort(q_len, kind="stable")
  d_order = np.argsort(d_len, kind="stable")
  q_width, d_width = queries.tokens.shape[1], docs.tokens.shape[1]
  lq = _bucket(int(q_len.max(initial=1)), q_width)
  qb, chunk0 = maxsim_blocks(
    nq, n, lq, _bucket(int(d_len.max(initial=1)), d_width), query_batch, chunk_size, memory_budget
  )
  blocks, s = [], 0  # (first sorted position, documents, token rows)
  while s < n:
    size = chunk0
    while (
      size * 2 <= chunk_size
      and s + size < n
      and qb * size * 2 * lq * _bucket(int(d_len[d_order[min(s + size * 2, n) - 1]]), d_width) * 4
      <= memory_budget
    ):
      size *= 2
    blocks.append((s, size, _bucket(int(d_len[d_order[min(s + size, n) - 1]]), d_width)))
    s += size
  p = queries.tokens.shape[2]  # tile rows: the cache-sized tile, fewer for a small budget
  rows = max(int(q_len.max(initial=1)), min(MAXSIM_TILE[0], memory_budget // (p * 4)))
  tiles, tile_of, slot_of = pack_query_tiles(q_len, q_order, rows, TILE_QUERIES)
  per_pass = max(1, memory_budget // (rows * p * 4))  # query tiles on the device at once
  passes = [range(t, min(t + per_pass, len(tiles))) for t in range(0, len(tiles), per_pass)]
  top = HostTopK(nq, kk)
  bar = tqdm(
    total=n * len(passes), desc="search", unit="doc", disable=not progress, file=sys.stderr
  )
  for group in passes:
    q_rows, q_slot = _tile_rows(queries, [tiles[t] for t in group], rows)
    q_rows, q_slot = jnp.asarray(q_rows), jnp.asarray(q_slot)
    members = np.concatenate([tiles[t] for t in group])  # the pass's queries
    at_tile, at_slot = tile_of[members] - group.start, slot_of[members]
    for start, size, rows_d in blocks:
      pos = np.arange(start, start + size)
      real = int((pos < n).sum())
      sl = d_order[np.minimum(pos, n - 1)]  # the last block repeats a document, then cuts it
      d = device_copy(docs.tokens[sl][:, :rows_d], np.float32)
      dm = jnp.asarray(np.asarray(docs.mask[sl][:, :rows_d]))
      ids = sl[:real]
      sc = np.asarray(_maxsim_block(q_rows, q_slot, d, dm))[at_tile, at_slot, :real]
      if allowed is not None:
        sc = np.where(allowed[members][:, ids], sc, -np.inf)
      top.add(members, ids, sc)
      bar.update(real)
  bar.close()
  return top.result()


def to_run(
  qids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, indices: np.ndarray
) -> Dict[str, Dict[str, float]]:
  """``{qid: {doc_id: score}}`` from :func:`search` output (dropping -1 entries)."""
  run = {}
  for qi, qid in enumerate(qids):
    run[qid] = {doc_ids[j]: float(s) for s, j in zip(scores[qi], indices[qi]) if j >= 0}
  return run
