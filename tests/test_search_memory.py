"""MaxSim search under a memory budget (retrieval/search.py): same run as with one big block."""

import numpy as np

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
  big = search(q, d, k=20, chunk_size=1024, query_batch=256, progress=False,
               memory_budget=2**40)
  small = search(q, d, k=20, chunk_size=1024, query_batch=256, progress=False,
                 memory_budget=8 * 7 * 33 * 4 * 3)  # three query-document pairs of 8 docs
  np.testing.assert_array_equal(big[1], small[1])
  np.testing.assert_allclose(big[0], small[0], rtol=1e-6)


def test_maxsim_blocks_fit_the_budget():
  qb, chunk = maxsim_blocks(256, 5382, 32, 512, 256, 1024, budget=512 * 2**20)
  assert qb * chunk * 32 * 512 * 4 <= 512 * 2**20
  assert chunk >= 8 and qb >= 1
  # the failing case: 256 x 1024 x Lq x 512 was 40 GB
  assert maxsim_blocks(10, 10, 4, 4, 256, 1024) == (10, 10)
  assert maxsim_blocks(4, 100, 10, 10, 4, 100, budget=1) == (1, 8)
