"""``plaid_search``: the PLAID-style first stage (``optical_jax/retrieval/plaid.py``) against
exact MaxSim search on the same token vectors, with its build time, index size and recall.

Synthetic token vectors with topic structure, as text has (random directions would give
centroids nothing to find): 256 topic centres in 384 dims; a document's tokens come from 2 of
them, a query's from 2, each token its centre plus noise, normalised. Documents of 16 to 192
tokens (a log-normal of median 90), queries of 8 to 32 (median 21), top 1,000. Full size:
10,000 documents (about 1M token vectors, the issue's scaling point) and 1,000 queries;
``--quick``: 2,000 documents, 200 queries; ``--tiny``: 60 documents, 8 queries.

* **Ours:** ``plaid_search`` with the default :class:`PlaidConfig` (the index built once,
  outside the timed calls; its build seconds and size are in the row's params).
* **Reference:** ``optical_jax.retrieval.search.search`` (exact MaxSim); the row gives the
  fraction of its top 100 and top 1,000 that PLAID found.
* **Reference:** ``fast-plaid`` (LightOn's PLAID engine, PyPI) on the same vectors, on the CPU:
  its index built once with its defaults (``create``: 4-bit residuals, 4 k-means iterations),
  then ``search`` top 1,000 with its defaults (8 IVF cells probed, 4,096 full scores); its row
  gives its own recall against exact MaxSim (computed outside the timed calls). fast-plaid pins
  its own torch (1.7.0: ``torch==2.11.0``), so it is not in requirements-test.txt; where it does
  not import the row says so.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import tempfile
import time

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, time_calls

DIM, K, TOPICS = 384, 1000, 256


def data(settings: Settings, seed: int = 0):
  """(query tokens float32, query mask, doc tokens float16, doc mask, sizes)."""
  n = settings.pick(10_000, 2_000, 60)
  nq = settings.pick(1_000, 200, 8)
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((TOPICS, DIM), dtype=np.float32)

  def draw(count, lengths, width, dtype):
    out = np.zeros((count, width, DIM), dtype)
    for s in range(0, count, 512):
      e = min(count, s + 512)
      topics = np.stack([rng.choice(TOPICS, 2, replace=False) for _ in range(e - s)])
      pick = topics[np.arange(e - s)[:, None], rng.integers(0, 2, (e - s, width))]
      x = centres[pick] + 0.6 * rng.standard_normal((e - s, width, DIM), dtype=np.float32)
      x /= np.linalg.norm(x, axis=-1, keepdims=True)
      m = np.arange(width)[None, :] < lengths[s:e, None]
      out[s:e] = (x * m[..., None]).astype(dtype)
    return out, np.arange(width)[None, :] < lengths[:, None]

  d_len = np.clip(rng.lognormal(np.log(90), 0.5, n), 16, 192).astype(int)
  q_len = np.clip(rng.lognormal(np.log(21), 0.3, nq), 8, 32).astype(int)
  docs, d_mask = draw(n, d_len, int(d_len.max()), np.float16)
  queries, q_mask = draw(nq, q_len, int(q_len.max()), np.float32)
  sizes = {
    "documents": n,
    "queries": nq,
    "doc_tokens": int(d_len.sum()),
    "query_tokens_mean": float(q_len.mean()),
    "dims": DIM,
    "k": K,
    "mode": settings.mode,
  }
  return queries, q_mask, docs, d_mask, sizes


def _reps(settings):
  from optical_jax.retrieval.index import Representations

  queries, q_mask, docs, d_mask, sizes = data(settings)
  return (
    Representations("maxsim", tokens=queries, mask=q_mask),
    Representations("maxsim", tokens=docs, mask=d_mask),
    sizes,
  )


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import jax
  from optical_jax.retrieval import plaid

  q, d, sizes = _reps(settings)
  cfg = plaid.PlaidConfig()
  start = time.perf_counter()
  index = plaid.build_plaid(d, cfg, {"bench": "plaid_search"}, progress=False)
  sizes["build_s"] = round(time.perf_counter() - start, 2)
  sizes["centroids"] = index.meta["num_centroids"]
  sizes["index_mb"] = round(index.nbytes() / 1e6, 1)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=plaid.plaid_search(index, q, d, K, cfg, progress=False)),
    settings.warmup(1, 1, 1),
    settings.reps(3, 3, 1),
  )
  sizes.update({k: round(v, 1) for k, v in out["r"][2].items()})
  return Side(
    times,
    first,
    label="ours (PLAID-style)",
    device=device_string(jax.devices()[0].device_kind),
    params=sizes,
    info={"top": out["r"][1].tolist()},
  )


def _recall(got, want) -> dict:
  """Mean fraction of ``want``'s top 100 and top 1,000 (per query; -1 = none) found in ``got``'s."""
  out = {}
  for depth in (100, 1000):
    out[f"recall@{depth}"] = round(
      float(
        np.mean(
          [
            len(set(g[:depth]) & set(w[:depth]) - {-1}) / max(1, len(set(w[:depth]) - {-1}))
            for g, w in zip(got, want)
          ]
        )
      ),
      4,
    )
  return out


def exact(settings: Settings, ours_info=None) -> Side:
  import jax
  from optical_jax.retrieval.search import search

  q, d, _ = _reps(settings)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=search(q, d, k=K, progress=False)),
    settings.warmup(1, 1, 1),
    settings.reps(3, 3, 1),
  )
  params = (
    _recall(np.asarray(ours_info["top"]), out["r"][1]) if ours_info and "top" in ours_info else {}
  )
  return Side(
    times,
    first,
    label="exact MaxSim (optical_jax.retrieval.search)",
    device=device_string(jax.devices()[0].device_kind),
    params=params,
  )


def fast_plaid(settings: Settings, ours_info=None) -> Side:
  """fast-plaid on the same vectors (module docstring)."""
  del ours_info
  try:
    import torch
    from fast_plaid import search as fp
  except ImportError as e:
    raise Unavailable(f"fast-plaid does not import here ({e}); it pins its own torch") from None
  from optical_jax.retrieval.search import search

  q, d, sizes = _reps(settings)
  docs = [torch.from_numpy(np.asarray(d.tokens[i][d.mask[i]], np.float32)) for i in range(len(d))]
  queries = [
    torch.from_numpy(np.asarray(q.tokens[i][q.mask[i]], np.float32)) for i in range(len(q))
  ]
  out = {}
  with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    index = fp.FastPlaid(index=folder, device="cpu")
    index.create(documents_embeddings=docs)
    build_s = round(time.perf_counter() - start, 2)
    first, times = time_calls(
      lambda: out.update(r=index.search(queries, top_k=K, show_progress=False)),
      settings.warmup(1, 1, 1),
      settings.reps(3, 3, 1),
    )
  got = [[doc for doc, _ in hits] + [-1] * (K - len(hits)) for hits in out["r"]]
  want = search(q, d, k=K, progress=False)[1]
  import fast_plaid as package

  return Side(
    times,
    first,
    label=f"fast-plaid {getattr(package, '__version__', '')} (CPU, torch {torch.__version__})",
    device="cpu",
    params={"build_s": build_s, **_recall(got, want), "documents": sizes["documents"]},
  )
