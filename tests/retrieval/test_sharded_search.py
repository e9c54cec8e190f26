"""Sharded search (documents split over 8 simulated CPU devices) equals one-device search."""

import numpy as np
import pytest

from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.search import search
from optical_jax.retrieval.sharded_search import search_sharded
from optical_jax.training import sharding


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _dense(n, q, dim=16, seed=0):
  rng = np.random.default_rng(seed)
  return (
    Representations("dense", vectors=_unit(rng.normal(size=(q, dim)))),
    Representations("dense", vectors=_unit(rng.normal(size=(n, dim)))),
  )


def _maxsim(n, q, lq=5, ld=9, dim=8, seed=0):
  rng = np.random.default_rng(seed)
  qm = rng.random((q, lq)) < 0.8
  qm[:, 0] = True
  dm = rng.random((n, ld)) < 0.7
  dm[:, 0] = True
  qt = _unit(rng.normal(size=(q, lq, dim))) * qm[..., None]
  dt = (_unit(rng.normal(size=(n, ld, dim))) * dm[..., None]).astype(np.float16)
  return (
    Representations("maxsim", tokens=qt, mask=qm),
    Representations("maxsim", tokens=dt, mask=dm),
  )


def _same(a, b):
  (sa, ia), (sb, ib) = a, b
  np.testing.assert_array_equal(ia, ib)
  np.testing.assert_allclose(sa, sb, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mesh_shape", [(8, 1), (4, 2)])
@pytest.mark.parametrize("n,k,chunk", [(101, 10, 4), (37, 50, 1024), (8, 3, 1)])
def test_dense_sharded_equals_one_device(mesh_shape, n, k, chunk):
  """Uneven shards (101 over 8), k above a device's share (37 docs, k=50), one doc per device."""
  mesh = sharding.make_mesh(*mesh_shape)
  queries, docs = _dense(n, 13)
  one = search(queries, docs, k=k, chunk_size=chunk, query_batch=5, progress=False)
  _same(
    search_sharded(queries, docs, mesh, k=k, chunk_size=chunk, query_batch=5, progress=False), one
  )
  assert one[1].shape == (13, min(k, n))


def test_maxsim_sharded_equals_one_device():
  mesh = sharding.make_mesh(8, 1)
  queries, docs = _maxsim(45, 7)
  one = search(queries, docs, k=12, chunk_size=4, progress=False)
  _same(search_sharded(queries, docs, mesh, k=12, chunk_size=2, progress=False), one)


def test_reranking_sharded_equals_one_device():
  """A first-stage restriction, some queries with fewer allowed documents than k (-1 rows)."""
  mesh = sharding.make_mesh(8, 1)
  queries, docs = _dense(60, 9, seed=3)
  allowed = np.random.default_rng(1).random((9, 60)) < 0.1
  one = search(queries, docs, k=8, allowed=allowed, chunk_size=16, progress=False)
  got = search_sharded(queries, docs, mesh, k=8, allowed=allowed, chunk_size=3, progress=False)
  _same(got, one)
  assert (one[1] == -1).any()
  for qi in range(9):
    assert set(got[1][qi][got[1][qi] >= 0]) <= set(np.flatnonzero(allowed[qi]))


def test_ties_go_to_the_lower_document_as_on_one_device():
  """Repeated documents score the same; both searches rank the lower index first."""
  mesh = sharding.make_mesh(8, 1)
  queries, docs = _dense(10, 4)
  docs = Representations("dense", vectors=np.concatenate([docs.vectors] * 5))
  one = search(queries, docs, k=20, progress=False)
  _same(search_sharded(queries, docs, mesh, k=20, chunk_size=2, progress=False), one)
