"""The PLAID-style first stage (retrieval/plaid.py): exact when nothing is pruned, its centroid
interaction equal to a plain reference, high recall on clustered tokens, and an index saved,
reloaded, and rebuilt when it does not match its store or settings."""

import json

import numpy as np
import pytest

from optical_jax.errors import UsageError
from optical_jax.retrieval import plaid
from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.search import search
from optical_jax.retrieval.store import build_store

pytest.importorskip("faiss")


def _clustered(rng, n, length, dim, topics, noise=0.35):
  """Token vectors around ``topics`` centres (normalised; a document draws from two topics),
  so that centroids mean something, as they do for real text."""
  centres = rng.normal(size=(topics, dim))
  x = np.empty((n, length, dim), np.float32)
  for i in range(n):
    pick = rng.choice(topics, size=2, replace=False)
    x[i] = centres[rng.choice(pick, size=length)] + noise * rng.normal(size=(length, dim))
  x /= np.linalg.norm(x, axis=-1, keepdims=True)
  mask = np.zeros((n, length), bool)
  for i, l in enumerate(rng.integers(1, length + 1, n)):
    mask[i, :l] = True
  return Representations("maxsim", tokens=x * mask[..., None], mask=mask)


SOURCE = {"key": "test", "rows": 0}


def test_nothing_pruned_is_exact_search():
  rng = np.random.default_rng(0)
  docs, queries = _clustered(rng, 120, 12, 16, 10), _clustered(rng, 9, 5, 16, 10)
  cfg = plaid.PlaidConfig(num_centroids=8, nprobe=8, centroid_threshold=-np.inf, ndocs=500)
  index = plaid.build_plaid(docs, cfg, SOURCE, progress=False)
  got_s, got_i, stats = plaid.plaid_search(index, queries, docs, 30, cfg, progress=False)
  want_s, want_i = search(queries, docs, k=30, progress=False)
  np.testing.assert_array_equal(got_i, want_i)
  np.testing.assert_allclose(got_s, want_s, rtol=1e-6)
  assert stats["candidates_stage1"] == 120


def test_centroid_interaction_equals_a_plain_reference():
  """Stage 2's vectorised score equals sum over query tokens of the max over each candidate's
  unpruned tokens (0 where none is left), on every candidate of stage 1."""
  rng = np.random.default_rng(1)
  docs, queries = _clustered(rng, 60, 10, 8, 6), _clustered(rng, 4, 6, 8, 6)
  cfg = plaid.PlaidConfig(num_centroids=16, nprobe=2, centroid_threshold=0.3)
  index = plaid.build_plaid(docs, cfg, SOURCE, progress=False)
  for qi in range(len(queries)):
    q = queries.tokens[qi][queries.mask[qi]]
    s = q @ index.centroids.T
    cand, approx = plaid.query_candidates(index, s, cfg)
    cells = {int(c) for row in s for c in np.argsort(-row)[:2]}
    want_cand = sorted(
      {
        d
        for d in range(60)
        if cells & set(index.codes[index.doc_offsets[d] : index.doc_offsets[d + 1]])
      }
    )
    assert cand.tolist() == want_cand
    kept = s.max(axis=0) >= 0.3
    for d, a in zip(cand, approx):
      codes = [c for c in index.codes[index.doc_offsets[d] : index.doc_offsets[d + 1]] if kept[c]]
      want = sum(max(s[i, c] for c in codes) if codes else 0.0 for i in range(len(q)))
      np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-6)


def test_index_arrays_describe_the_documents():
  rng = np.random.default_rng(2)
  docs = _clustered(rng, 40, 9, 8, 5)
  index = plaid.build_plaid(docs, plaid.PlaidConfig(num_centroids=7), SOURCE, progress=False)
  lengths = docs.mask.sum(axis=1)
  np.testing.assert_array_equal(np.diff(index.doc_offsets), lengths)
  # every token's code is its nearest centroid
  tokens = docs.tokens[docs.mask]
  np.testing.assert_array_equal(index.codes, np.argmax(tokens @ index.centroids.T, axis=1))
  assert index.meta["num_centroids"] == min(7, int(lengths.sum()) // 39) == len(index.centroids)
  for c in range(len(index.centroids)):
    got = index.ivf_docs[index.ivf_offsets[c] : index.ivf_offsets[c + 1]].tolist()
    want = [
      d for d in range(40) if c in index.codes[index.doc_offsets[d] : index.doc_offsets[d + 1]]
    ]
    assert got == want


def test_approximate_stages_find_what_exact_search_finds():
  """Recall@10 against exact MaxSim when stage 1 probes 8 of ~127 centroids per query token and
  stage 2 keeps 100 of 600 documents, on topic-clustered tokens (0.99 when written; 4 probes
  give 0.94, and pruning at 0.4, which on these synthetic scores prunes most tokens, 0.83)."""
  rng = np.random.default_rng(3)
  docs, queries = _clustered(rng, 600, 16, 32, 40), _clustered(rng, 30, 6, 32, 40)
  cfg = plaid.PlaidConfig(nprobe=8, centroid_threshold=-np.inf, ndocs=100)
  index = plaid.build_plaid(docs, cfg, SOURCE, progress=False)
  _, got, stats = plaid.plaid_search(index, queries, docs, 10, cfg, progress=False)
  _, want = search(queries, docs, k=10, progress=False)
  recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
  assert recall >= 0.95, (recall, stats)
  assert stats["candidates_exact"] <= 100


def test_saved_index_reloads_and_mismatches_rebuild(tmp_path):
  rng = np.random.default_rng(4)
  docs = _clustered(rng, 50, 8, 8, 5)
  source = {"key": "abc", "rows": 50}
  cfg = plaid.PlaidConfig(num_centroids=4)
  folder = tmp_path / "plaid"
  built = plaid.load_or_build(folder, docs, cfg, source, progress=False)
  again = plaid.open_plaid(folder, cfg, source)
  for name in plaid._ARRAYS:
    np.testing.assert_array_equal(getattr(again, name), getattr(built, name))
  # search settings do not touch the index; build settings and another store do
  assert plaid.open_plaid(folder, plaid.PlaidConfig(num_centroids=4, nprobe=9), source) is not None
  assert plaid.open_plaid(folder, plaid.PlaidConfig(num_centroids=5), source) is None
  assert plaid.open_plaid(folder, cfg, {"key": "other", "rows": 50}) is None
  # a damaged array (truncated) is rebuilt, not read
  np.save(folder / "codes.npy", built.codes[:-3])
  assert plaid.open_plaid(folder, cfg, source) is None
  rebuilt = plaid.load_or_build(folder, docs, cfg, source, progress=False)
  np.testing.assert_array_equal(rebuilt.codes, built.codes)
  assert json.loads((folder / plaid.META).read_text())["num_docs"] == 50


def test_searches_a_disk_store(tmp_path):
  """Stage 3 reads only the candidates' rows from a store on disk (DiskRows)."""
  rng = np.random.default_rng(5)
  mem = _clustered(rng, 64, 8, 8, 6)
  tokens = mem.tokens.astype(np.float16)
  arrays = build_store(
    tmp_path / "s",
    "maxsim",
    64,
    8,
    8,
    lambda a, b: (tokens[a:b], mem.mask[a:b]),
    "t",
    shard_size=16,
    progress=False,
  )
  disk = Representations("maxsim", tokens=arrays["tokens"], mask=arrays["mask"])
  queries = _clustered(rng, 5, 4, 8, 6)
  cfg = plaid.PlaidConfig(num_centroids=6, nprobe=6, centroid_threshold=-np.inf)
  index = plaid.build_plaid(disk, cfg, SOURCE, progress=False)
  got_s, got_i, _ = plaid.plaid_search(index, queries, disk, 10, cfg, progress=False)
  want_s, want_i = search(queries, disk, k=10, progress=False)
  np.testing.assert_array_equal(got_i, want_i)
  np.testing.assert_allclose(got_s, want_s, rtol=1e-5)
  # index_for saves it beside the store and reuses it while the store is the same
  first = plaid.index_for(disk, cfg, progress=False)
  saved = tmp_path / "s.plaid"
  assert json.loads((saved / plaid.META).read_text())["source"] == {"key": "t", "rows": 64}
  stamp = (saved / "codes.npy").stat().st_mtime_ns
  again = plaid.index_for(disk, cfg, progress=False)
  np.testing.assert_array_equal(again.codes, first.codes)
  assert (saved / "codes.npy").stat().st_mtime_ns == stamp


def test_refuses_what_it_cannot_do():
  dense = Representations("dense", vectors=np.eye(4, dtype=np.float32))
  with pytest.raises(UsageError, match="--ranker maxsim"):
    plaid.build_plaid(dense, plaid.PlaidConfig(), SOURCE)
  with pytest.raises(UsageError, match="ndocs"):
    plaid.PlaidConfig(ndocs=0)
  rng = np.random.default_rng(6)
  docs = _clustered(rng, 20, 4, 8, 3)
  index = plaid.build_plaid(docs, plaid.PlaidConfig(num_centroids=2), SOURCE, progress=False)
  with pytest.raises(UsageError, match="16-dim"):
    plaid.plaid_candidates(index, _clustered(rng, 2, 3, 16, 3), plaid.PlaidConfig())
  assert plaid.centroid_count(10_000, plaid.PlaidConfig()) == 256  # 10,000 / 39 caps 1,024
  assert plaid.centroid_count(1_000_000, plaid.PlaidConfig()) == 8192  # 2^floor(log2 16,000)
  assert plaid.centroid_count(100, plaid.PlaidConfig()) == 2
