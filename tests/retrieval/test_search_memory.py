"""MaxSim search under a memory budget (retrieval/search.py): same run as with one big block."""

import numpy as np
import pytest

from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.search import maxsim_blocks, search


def _tokens(rng, n, length, dim):
  x = rng.normal(size=(n, length, dim)).astype(np.float32)
  x /= np.linalg.norm(x, axis=-1, keepdims=True)
  mask = np.zeros((n, length), bool)
  for i, l in enumerate(rng.integers(1, length + 1, n)):
    mask[i, :l] = True
  return Representations("maxsim", tokens=x * mask[..., None], mask=mask)


def test_budgeted_maxsim_equals_one_block():
  rng = np.random.default_rng(0)
  q, d = _tokens(rng, 13, 7, 16), _tokens(rng, 101, 33, 16)
  big = search(q, d, k=20, chunk_size=1024, query_batch=256, progress=False, memory_budget=2**40)
  small = search(
    q, d, k=20, chunk_size=1024, query_batch=256, progress=False, memory_budget=8 * 7 * 33 * 4 * 3
  )  # three query-document pairs of 8 docs
  np.testing.assert_array_equal(big[1], small[1])
  np.testing.assert_allclose(big[0], small[0], rtol=1e-6)


def test_maxsim_blocks_fit_the_budget():
  qb, chunk = maxsim_blocks(256, 5382, 32, 512, 256, 1024, budget=512 * 2**20)
  assert qb * chunk * 32 * 512 * 4 <= 512 * 2**20
  assert chunk >= 8 and qb >= 1
  # the failing case: 256 x 1024 x Lq x 512 was 40 GB
  assert maxsim_blocks(10, 10, 4, 4, 256, 1024) == (10, 10)
  assert maxsim_blocks(4, 100, 10, 10, 4, 100, budget=1) == (1, 8)


@pytest.mark.parametrize("kind, stream", [("dense", 0), ("maxsim", 0), ("maxsim", 10**9)])
def test_rerank_equals_masked_search(tmp_path, monkeypatch, kind, stream):
  """Re-ranking gathers only each query's candidates (here from a disk store, read row by
  row), yet returns what the full masked search returns: same documents, same order (ties
  included: repeated documents), same scores; queries with fewer candidates than k pad -1.
  MaxSim candidates covering much of the collection stream it instead (RERANK_STREAM; 0: never
  here, 10**9: always): the same run."""
  from optical_jax.retrieval import rerank as rerank_module
  from optical_jax.retrieval.rerank import rerank

  monkeypatch.setattr(rerank_module, "RERANK_STREAM", stream)
  from optical_jax.retrieval.store import build_store

  rng = np.random.default_rng(4)
  n, nq = 50, 7
  if kind == "dense":
    v = rng.normal(size=(n // 2, 6)).astype(np.float32)
    v = np.concatenate([v, v]) / np.linalg.norm(np.concatenate([v, v]), axis=1, keepdims=True)
    qv = rng.normal(size=(nq, 6)).astype(np.float32)
    queries = Representations("dense", vectors=qv / np.linalg.norm(qv, axis=1, keepdims=True))
    parts = lambda a, b: (v[a:b],)
    arrays = build_store(
      tmp_path / "s", "dense", n, 6, 0, parts, "t", shard_size=16, progress=False
    )
  else:
    half = _tokens(rng, n // 2, 9, 5)
    tokens = np.concatenate([half.tokens] * 2).astype(np.float16)
    mask = np.concatenate([half.mask] * 2)
    queries = _tokens(rng, nq, 4, 5)
    parts = lambda a, b: (tokens[a:b], mask[a:b])
    arrays = build_store(
      tmp_path / "s", "maxsim", n, tokens.shape[2], 9, parts, "t", shard_size=16, progress=False
    )
  docs = Representations(kind, **arrays)
  candidates = np.full((nq, 12), -1)
  allowed = np.zeros((nq, n), bool)
  for qi in range(nq):
    c = rng.choice(n, size=rng.integers(1, 13), replace=False)
    candidates[qi, : len(c)] = c
    allowed[qi, c] = True
  want = search(queries, docs, k=10, allowed=allowed, progress=False)
  # MaxSim: also under a budget of two candidates per slice (slices merged on the host)
  budgets = (2**40, 2 * 9 * (5 + 4) * 4) if kind == "maxsim" else (2**40,)
  for budget in budgets:
    got = rerank(
      queries, docs, candidates, k=10, query_batch=3, progress=False, memory_budget=budget
    )
    np.testing.assert_array_equal(got[1], want[1])
    # the same float32 dot products, summed in another order (gathered rows vs whole matrix)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
    assert (got[1] == -1).any()


def test_length_sorted_maxsim_equals_every_padded_pair():
  """MaxSim search takes texts in order of length and cuts each block to its longest text;
  the run is that of scoring every padded query-document pair (numpy, here): same scores,
  same documents, ties (repeated documents) to the lower index, for any budget."""
  rng = np.random.default_rng(7)
  half = _tokens(rng, 60, 70, 8)
  docs = Representations(
    "maxsim", tokens=np.concatenate([half.tokens] * 2), mask=np.concatenate([half.mask] * 2)
  )
  queries = _tokens(rng, 11, 30, 8)
  sim = np.einsum("qip,djp->qdij", queries.tokens, docs.tokens)
  sim = np.where(docs.mask[None, :, None, :], sim, -np.inf).max(-1)
  ref = np.where(queries.mask[:, None, :], sim, 0.0).sum(-1)  # [Q, N]
  order = np.lexsort((np.broadcast_to(np.arange(120), ref.shape), -ref), axis=1)[:, :25]
  for budget in (2**40, 16 * 48 * 96 * 4 * 2):
    s, i = search(queries, docs, k=25, progress=False, memory_budget=budget)
    np.testing.assert_array_equal(i, order)
    np.testing.assert_allclose(s, np.take_along_axis(ref, order, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,k,chunk", [(50, 10, 16), (3000, 100, 512), (700, 1000, 256)])
def test_dense_host_selection_equals_device_merge(monkeypatch, n, k, chunk):
  """On a CPU backend dense search keeps its top-k on the host by a threshold; the run is the
  device merge's (run here by pretending the backend is a GPU): same documents in the same
  order, ties (repeated and rounded vectors) to the lower index, with and without a mask."""
  from optical_jax.retrieval import host_select
  from optical_jax.retrieval import search as search_module

  rng = np.random.default_rng(n)
  v = np.round(rng.standard_normal((n // 2, 16)) * 2) / 2
  v = np.concatenate([v, v]).astype(np.float32)
  v /= np.linalg.norm(v, axis=1, keepdims=True)
  q = rng.standard_normal((37, 16)).astype(np.float32)
  docs, queries = Representations("dense", vectors=v), Representations("dense", vectors=q)
  allowed = rng.random((37, n)) < 0.3
  monkeypatch.setattr(host_select, "HOST_SELECT_CHUNK", chunk)
  monkeypatch.setattr(host_select, "HOST_SELECT_HOLD", 2)  # cut back to the k best, or not
  host = [
    search(queries, docs, k=k, progress=False),
    search(queries, docs, k=k, allowed=allowed, progress=False),
  ]
  monkeypatch.setattr(search_module.jax, "default_backend", lambda: "gpu")
  device = [
    search(queries, docs, k=k, progress=False),
    search(queries, docs, k=k, allowed=allowed, progress=False),
  ]
  for (hs, hi), (ds, di) in zip(host, device):
    np.testing.assert_array_equal(hi, di)
    np.testing.assert_allclose(hs, ds, rtol=1e-5, atol=1e-6)
  if k > n // 2:  # about 30% of the documents are allowed: queries with fewer than k pad -1
    assert (host[1][1] == -1).any()


class _CountingRows:
  """An array whose fancy-indexed reads are counted (a document store on disk)."""

  def __init__(self, a):
    self.a, self.rows_read = a, 0
    self.shape, self.dtype = a.shape, a.dtype

  def __len__(self):
    return len(self.a)

  def __getitem__(self, key):
    out = self.a[key]
    if isinstance(key, np.ndarray):
      self.rows_read += len(key)
    return out


# 2**40: every query in one tile, one pass. 8 * 16 * 4: tiles of 8 token rows (16 float32 each),
# one tile on the device at a time, so one pass per tile.
@pytest.mark.parametrize("budget", [2**40, 8 * 16 * 4])
def test_maxsim_reads_the_store_once_per_pass(budget):
  """Query tiles share a pass over the documents (each document's tokens read once per pass);
  a budget too small for all their tokens splits them into passes; the run is the same."""
  from optical_jax.retrieval.search import TILE_QUERIES, pack_query_tiles

  rng = np.random.default_rng(3)
  q, d = _tokens(rng, 13, 7, 16), _tokens(rng, 101, 33, 16)
  want = search(q, d, k=20, query_batch=256, progress=False)
  counted = Representations("maxsim", tokens=_CountingRows(d.tokens), mask=d.mask)
  got = search(q, counted, k=20, query_batch=4, progress=False, memory_budget=budget)
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
  lengths = q.mask.sum(1)
  passes = (
    1
    if budget == 2**40
    else len(pack_query_tiles(lengths, np.argsort(lengths), 8, TILE_QUERIES)[0])
  )
  assert passes == 1 or passes >= 3
  # each pass reads every document once; its last block is padded up to 8 rows at most
  assert 101 * passes <= counted.tokens.rows_read < (101 + 8) * passes


def test_query_tiles_pack_whole_queries_without_padding():
  """pack_query_tiles: queries in the given order, whole, a tile closed when the next does not
  fit its rows or it holds per_tile queries; every query has one (tile, slot)."""
  from optical_jax.retrieval.search import pack_query_tiles

  lengths = np.array([5, 3, 0, 8, 2, 7])
  order = np.argsort(lengths, kind="stable")  # 0-token query 2 first
  tiles, tile_of, slot_of = pack_query_tiles(lengths, order, 8, 3)
  assert [t.tolist() for t in tiles] == [[2, 4, 1], [0], [5], [3]]
  for t, qs in enumerate(tiles):
    assert lengths[qs].sum() <= 8 and len(qs) <= 3
    assert (tile_of[qs] == t).all() and slot_of[qs].tolist() == list(range(len(qs)))
  with pytest.raises(ValueError, match="a query of 8 tokens does not fit a tile of 7 rows"):
    pack_query_tiles(lengths, order, 7, 3)


def test_host_topk_keeps_the_best_whatever_the_order():
  """_HostTopK: documents in any order, in blocks, many ties and -inf (not allowed) scores; the
  result is the (score descending, index ascending) top-k of the whole matrix, also when the
  candidates are cut back (k small against the collection)."""
  from optical_jax.retrieval.host_select import HostTopK

  rng = np.random.default_rng(5)
  scores = rng.integers(0, 6, size=(9, 300)).astype(np.float32)  # ties everywhere
  scores[rng.random(scores.shape) < 0.1] = -np.inf
  scores[8] = -np.inf  # a query with nothing allowed
  for k in (1, 7, 300):
    top = HostTopK(9, k)
    perm = rng.permutation(300)
    for s in range(0, 300, 37):
      ids = perm[s : s + 37]
      top.add(np.arange(9), ids, scores[:, ids])
    got_s, got_i = top.result()
    want = np.lexsort((np.broadcast_to(np.arange(300), scores.shape), -scores), axis=1)[:, :k]
    want_s = np.take_along_axis(scores, want, 1)
    want = np.where(np.isfinite(want_s), want, -1)
    np.testing.assert_array_equal(got_i, want)
    np.testing.assert_array_equal(got_s, want_s)


def test_raise_threshold_keeps_the_k_best_scores():
  """The host's running top-k: merging a block's candidates (rows ascending, any count per row,
  none for some) into each query's k best gives the k best of both, as a sort does."""
  from optical_jax.retrieval.host_select import _raise_threshold

  rng = np.random.default_rng(0)
  top = rng.standard_normal((6, 5)).astype(np.float32)
  top[2, 3:] = -np.inf  # a query with fewer than k so far
  rows = np.sort(rng.choice([0, 2, 3, 5], 17))
  scores = rng.standard_normal(17).astype(np.float32)
  got = np.sort(_raise_threshold(top, rows, scores), axis=1)
  for q in range(6):
    want = np.sort(np.concatenate([top[q], scores[rows == q]]))[-5:]
    np.testing.assert_array_equal(got[q], want)
  assert _raise_threshold(top, rows[:0], scores[:0]) is top
