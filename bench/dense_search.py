"""``dense_search``: exact top-k search of pooled vectors, ours against FAISS ``IndexFlatIP``.

The same random unit vectors in every process (384 dims, e5-small's width): 100,000 documents and
1,000 queries at full size (20,000 and 200 with ``--quick``), k = 100. Both sides return the
exact top-k by inner product; the row checks they found the same documents.

* **Ours:** ``optical_jax.retrieval.search.search`` (jitted chunk scores and a running top-k on
  the JAX device, documents in chunks of 1,024, queries in batches of 256).
* **Reference:** ``faiss.IndexFlatIP`` built over the documents (outside the timing), then
  ``index.search(queries, k)`` on the host CPU with FAISS's own threads.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, time_calls

DIM, K = 384, 100


def vectors(settings: Settings, seed: int = 0):
  n = settings.pick(100_000, 20_000, 2_000)
  q = settings.pick(1_000, 200, 20)
  rng = np.random.default_rng(seed)
  docs = rng.standard_normal((n, DIM), dtype=np.float32)
  docs /= np.linalg.norm(docs, axis=1, keepdims=True)
  queries = docs[:q] + 0.5 * rng.standard_normal((q, DIM), dtype=np.float32)
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  return docs, queries, {"documents": n, "queries": q, "dims": DIM, "k": K, "mode": settings.mode}


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import jax
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.search import search

  docs, queries, sizes = vectors(settings)
  d, q = Representations("dense", vectors=docs), Representations("dense", vectors=queries)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=search(q, d, k=K, progress=False)),
    settings.warmup(),
    settings.reps(5, 3, 1),
  )
  return Side(
    times,
    first,
    label="ours",
    device=device_string(jax.devices()[0].device_kind),
    params=sizes,
    info={"top": out["r"][1][:, :10].tolist()},
  )


def faiss_flat(settings: Settings, ours_info=None) -> Side:
  try:
    import faiss
  except ImportError as e:
    raise Unavailable(f"faiss not importable: {e}") from e
  docs, queries, sizes = vectors(settings)
  index = faiss.IndexFlatIP(DIM)
  index.add(docs)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=index.search(queries, K)), settings.warmup(), settings.reps(5, 3, 1)
  )
  params = {"faiss_threads": faiss.omp_get_max_threads()}
  if ours_info and "top" in ours_info:
    ours_top = np.asarray(ours_info["top"])
    params["same_top10_fraction"] = float(np.mean(ours_top == out["r"][1][:, :10]))
  return Side(times, first, label="FAISS IndexFlatIP", device=device_string(), params=params)
