"""FAISS first stage (retrieval/ann.py): flat equals exact search, recall is measured right, and
eval.py runs with an index and reports its recall."""

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from optical_jax.errors import UsageError  # noqa: E402
from optical_jax.retrieval import ann  # noqa: E402
from optical_jax.retrieval.index import Representations  # noqa: E402
from optical_jax.retrieval.search import search  # noqa: E402


def _data(n=3000, q=50, d=32, seed=0):
  rng = np.random.default_rng(seed)
  docs = rng.normal(size=(n, d)).astype(np.float32)
  docs /= np.linalg.norm(docs, axis=1, keepdims=True)
  queries = docs[:q] + 0.2 * rng.normal(size=(q, d)).astype(np.float32)
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  return docs, queries


def _exact(docs, queries, k):
  return search(
    Representations("dense", vectors=queries),
    Representations("dense", vectors=docs),
    k=k,
    progress=False,
  )


def test_flat_index_equals_exact_search():
  docs, queries = _data()
  es, ei = _exact(docs, queries, 20)
  s, i = ann.ann_search(ann.build_index(docs, ann.AnnConfig(kind="flat")), queries, 20)
  np.testing.assert_array_equal(i, ei)
  np.testing.assert_allclose(s, es, atol=1e-5)
  assert ann.recall_against(i, ei) == 1.0


@pytest.mark.parametrize(
  "cfg", [ann.AnnConfig(kind="ivf", nprobe=64), ann.AnnConfig(kind="hnsw", ef_search=256)]
)
def test_approximate_indexes_find_nearly_all_and_score_exactly(cfg):
  docs, queries = _data()
  es, ei = _exact(docs, queries, 10)
  s, i = ann.ann_search(ann.build_index(docs, cfg), queries, 10)
  assert ann.recall_against(i, ei) > 0.9
  for qi in range(len(queries)):  # the scores FAISS returns are the exact dot products
    np.testing.assert_allclose(s[qi], docs[i[qi]] @ queries[qi], atol=1e-5)
  assert np.all(np.diff(s, axis=1) <= 1e-6)  # best first


def test_recall_by_hand_and_settings():
  exact = np.asarray([[1, 2, 3, 4], [5, 6, -1, -1]])
  approx = np.asarray([[4, 9, 1, 8], [6, 5, 7, -1]])
  assert ann.recall_against(approx, exact) == pytest.approx((2 / 4 + 2 / 2) / 2)
  assert ann.nlist_for(10_000, ann.AnnConfig(kind="ivf")) == 256  # min(400, 10000 // 39)
  assert ann.nlist_for(30, ann.AnnConfig(kind="ivf")) == 1
  with pytest.raises(UsageError, match="nprobe=0"):
    ann.AnnConfig(kind="ivf", nprobe=0)
  with pytest.raises(UsageError, match="expected one of"):
    ann.AnnConfig(kind="lsh")
  with pytest.raises(UsageError, match="train_per_cell=-1"):
    ann.AnnConfig(kind="ivf", train_per_cell=-1)


def test_ivf_trains_on_a_sample_per_cell(monkeypatch):
  """k-means sees at most train_per_cell vectors per cell (0: all of them); the index still
  holds every document."""
  docs, queries = _data(n=3000)
  seen = []
  real = faiss.IndexIVFFlat.train
  monkeypatch.setattr(
    faiss.IndexIVFFlat, "train", lambda self, x: (seen.append(len(x)), real(self, x))[1]
  )
  small = ann.build_index(docs, ann.AnnConfig(kind="ivf", nlist=20, train_per_cell=40, nprobe=20))
  every = ann.build_index(docs, ann.AnnConfig(kind="ivf", nlist=20, train_per_cell=0))
  assert seen == [800, 3000] and small.ntotal == every.ntotal == 3000
  _, ei = _exact(docs, queries, 10)
  assert ann.recall_against(ann.ann_search(small, queries, 10)[1], ei) == 1.0  # every cell visited
