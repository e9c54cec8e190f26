"""Top-k selection on the host for exact search on a CPU backend.

XLA's top-k on the CPU is a partial sort of every score, a multiple of the scoring's cost for
k = 1,000 (``docs/PERFORMANCE.md``); a threshold on the host does the same selection for little:
only a score above a query's current k-th best can enter its list.

* :func:`dense_search_host_select`: dense search, documents in index order.
* :class:`HostTopK`: scores arriving in any document order (MaxSim's length-sorted blocks).

Both give the run of a full sort by (score descending, document index ascending).
"""

from __future__ import annotations

import sys
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.retrieval.host_arrays import device_copy
from optical_jax.retrieval.index import Representations


#: Dense search on a CPU backend: documents per scored block and queries per pass (the
#: [queries, documents] float32 block is 32 MiB).
HOST_SELECT_CHUNK = 8192
HOST_SELECT_QUERIES = 1024


def _row_slots(rows: np.ndarray, nq: int):
  """rows [M] grouped by row (ascending) -> (each entry's slot within its row [M], the widest
  row's count): where each entry goes in a padded [nq, width] layout, in its order."""
  count = np.bincount(rows, minlength=nq)
  return np.arange(len(rows)) - (np.cumsum(count) - count)[rows], int(count.max(initial=0))


def _best_by_row(rows, scores, ids, kth, kk: int):
  """The ``kk`` best candidates of every query row by (score descending, index ascending).

  rows [M], scores [M], ids [M]: candidates, which within each row come in ascending index
  order among equal scores (the blocks' parts in turn, each rows ascending); kth [Q]: each row's
  exact k-th best score (a candidate below it cannot be kept). -> (scores [Q, kk], ids [Q, kk])
  best first, -inf / -1 where a row has fewer. The candidates at or above ``kth`` (about kk a
  row) are grouped by row (a stable sort of runs already sorted), laid out one row each and
  sorted per row (stable, so ties keep the lower index): small sorts instead of one over all M."""
  nq = len(kth)
  keep = np.flatnonzero(scores >= kth[rows])
  keep = keep[np.argsort(rows[keep], kind="stable")]
  rows, scores, ids = rows[keep], scores[keep], ids[keep]
  at, widest = _row_slots(rows, nq)
  width = max(widest, kk)
  by_row = np.full((nq, width), -np.inf, np.float32)
  id_row = np.full((nq, width), -1, np.int64)
  by_row[rows, at], id_row[rows, at] = scores, ids
  order = np.argsort(-by_row, axis=1, kind="stable")[:, :kk]
  return np.take_along_axis(by_row, order, 1), np.take_along_axis(id_row, order, 1)


#: Candidates held per query, in multiples of k, before they are cut back to the k best (memory
#: only: the threshold is exact after every block whatever this is).
HOST_SELECT_HOLD = 8


@jax.jit
def _dense_block(q, d, d_valid):
  """q [Q, p], d [C, p], d_valid [C] -> scores [Q, C], -inf at invalid documents."""
  return jnp.where(d_valid[None, :], q @ d.T, -jnp.inf)


def _raise_threshold(top: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """top [Q, k]: each query's k best scores so far (any order; -inf where fewer); rows [M]
  ascending, scores [M]: a block's new candidates -> the k best of both, per query."""
  if not len(rows):
    return top
  at, width = _row_slots(rows, len(top))
  new = np.full((len(top), width), -np.inf, np.float32)
  new[rows, at] = scores
  return np.partition(np.concatenate([top, new], axis=1), width, axis=1)[:, width:]


def dense_search_host_select(
  queries: Representations,
  docs: Representations,
  kk: int,
  allowed: Optional[np.ndarray],
  progress: bool,
) -> (np.ndarray, np.ndarray):
  """:func:`search`, dense, on a CPU backend: the scores of each block of documents come from
  the jitted matmul; the top-k is kept on the host by a threshold. XLA's top-k on the CPU is a
  partial sort of every score (a multiple of the matmul's cost for k = 1,000; measured in
  ``docs/PERFORMANCE.md``), but only a document above a query's current k-th best score can
  enter its list. The first block sets each query's k best (``np.partition``); after every
  later block the candidates that beat the threshold (one ``np.flatnonzero`` over the block)
  are merged into them (:func:`_raise_threshold`), so the threshold is always the exact k-th
  best seen so far and few documents pass it. Candidates are kept with their ids and cut back
  to the k best (:func:`_best_by_row`) only when they pass :data:`HOST_SELECT_HOLD` k per query.
  The next block's matmul is dispatched before the host filters the current one, so the two
  overlap. Same run as the device merge: same scores, same documents, ties to the lower index
  (documents are taken in index order and an equal score does not pass the threshold)."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  n = len(docs)
  chunk = min(HOST_SELECT_CHUNK, n)
  out_s = np.full((len(queries), kk), -np.inf, np.float32)
  out_i = np.full((len(queries), kk), -1, np.int64)

  def dispatch(q, ds):
    stop = min(ds + chunk, n)
    block = device_copy(docs.vectors[ds:stop], np.float32, rows=chunk)  # the last: zero-padded
    valid = np.arange(chunk) < stop - ds  # the padding masked
    return ds, stop, _dense_block(q, block, jnp.asarray(valid))

  bar = tqdm(total=len(queries), desc="search", unit="query", disable=not progress, file=sys.stderr)
  for qs in range(0, len(queries), HOST_SELECT_QUERIES):
    qv = np.asarray(queries.vectors[qs : qs + HOST_SELECT_QUERIES], np.float32)
    nq = len(qv)
    q = jnp.asarray(qv)
    top = np.full((nq, kk), -np.inf, np.float32)  # each query's kk best scores so far
    kth = top[:, 0]
    parts, held = [], 0
    pending = dispatch(q, 0)
    while pending is not None:
      ds, stop, s_dev = pending
      pending = dispatch(q, stop) if stop < n else None  # runs while this block is filtered
      width = stop - ds
      s = np.asarray(s_dev)[:, :width]  # zero-copy on the CPU
      if allowed is not None:
        s = np.where(allowed[qs : qs + nq, ds:stop], s, -np.inf)
      if ds == 0 and width > kk:  # the first block's kk best set the first threshold
        top = np.partition(s, width - kk, axis=1)[:, width - kk :]
        kth = top.min(axis=1)
        r, c = np.divmod(np.flatnonzero(s >= kth[:, None]), width)  # rows ascending
        v = s[r, c]
        if not np.isfinite(kth).all():  # a row with fewer than kk allowed: not its -inf
          r, c, v = r[np.isfinite(v)], c[np.isfinite(v)], v[np.isfinite(v)]
      else:
        r, c = np.divmod(np.flatnonzero(s > kth[:, None]), width)  # rows ascending
        v = s[r, c]
        top = _raise_threshold(top, r, v)
        kth = top.min(axis=1)  # later documents must beat it (a tie loses)
      parts.append((r, v.astype(np.float32), (ds + c).astype(np.int64)))
      held += len(r)
      if held > HOST_SELECT_HOLD * nq * kk:  # the k best, still in (score, index) order
        best_s, best_i = _best_by_row(*map(np.concatenate, zip(*parts)), kth, kk)
        r, c = np.nonzero(best_i >= 0)
        parts, held = [(r, best_s[r, c], best_i[r, c])], len(r)
    if parts:
      best_s, best_i = _best_by_row(*map(np.concatenate, zip(*parts)), kth, kk)
      out_s[qs : qs + nq], out_i[qs : qs + nq] = best_s, best_i
    bar.update(nq)
  bar.close()
  return out_s, out_i


class HostTopK:
  """The ``k`` best documents of every query row, kept on the host while blocks of scores arrive
  in any document order: by (score descending, document index ascending), so a tie goes to the
  lower index whatever order the documents come in. Only a score at or above a row's current
  k-th best can enter; the candidates are cut back to the k best when they pass ``4 k`` per row
  on average, so memory is O(rows * k) whatever the collection's size. A -inf score (not
  allowed) never enters."""

  def __init__(self, num_rows: int, k: int):
    self.n, self.k = num_rows, k
    self.kth = np.full(num_rows, -np.inf, np.float32)
    self.parts, self.held = [], 0

  def add(self, rows: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> None:
    """rows int [B] (which query rows), ids int [C] (which documents), scores [B, C]."""
    r, c = np.nonzero((scores >= self.kth[rows][:, None]) & np.isfinite(scores))
    self.parts.append((rows[r], scores[r, c].astype(np.float32), ids[c].astype(np.int64)))
    self.held += len(r)
    if self.held > 4 * self.n * self.k:
      self._compact()

  def _compact(self):
    rows, scores, ids = (np.concatenate(x) for x in zip(*self.parts))
    order = np.lexsort((ids, -scores, rows))
    rows, scores, ids = rows[order], scores[order], ids[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(self.n))[rows]
    keep = rank < self.k
    rows, scores, ids, rank = rows[keep], scores[keep], ids[keep], rank[keep]
    last = rank == self.k - 1
    self.kth[rows[last]] = scores[last]
    self.parts, self.held = [(rows, scores, ids)], len(rows)
    return rows, scores, ids, rank

  def result(self) -> (np.ndarray, np.ndarray):
    """(scores [rows, k], ids [rows, k]) best first; -inf and -1 where a row has fewer."""
    out_s = np.full((self.n, self.k), -np.inf, np.float32)
    out_i = np.full((self.n, self.k), -1, np.int64)
    if self.parts:
      rows, scores, ids, rank = self._compact()
      out_s[rows, rank] = scores
      out_i[rows, rank] = ids
    return out_s, out_i
