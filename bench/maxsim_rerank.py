"""``maxsim_rerank``: re-ranking a first stage with MaxSim, ours against a PyTorch ColBERT-style
scorer.

The same random data in every process: a pool of documents of 128 token vectors (128-d,
float16, a ColBERT-style projection; a third of the positions padding), queries of 32 tokens,
each query with its own candidates drawn from the pool (a first-stage run of depth K), top 100
kept. Full size: 64 queries x 1,000 candidates from 20,000 documents; ``--quick``: 16 x 200 from
5,000.

* **Ours:** ``optical_jax.retrieval.rerank.rerank``: the candidates' token vectors gathered per
  query batch, MaxSim ``sum_i max_j <q_i, d_j>`` over real tokens jitted on the JAX device,
  then top-k.
* **Reference:** the scorer a ColBERT user would write in PyTorch: per query, gather its
  candidates' tokens as float32, ``einsum("ip,kjp->kij")``, padding masked to -inf, max over
  document tokens, sum over real query tokens, ``torch.topk``; ``torch.inference_mode()``, the
  same thread count. The row checks both find the same top 10.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, device_string, time_calls

DIM, DOC_TOKENS, QUERY_TOKENS, K = 128, 128, 32, 100


def data(settings: Settings, seed: int = 0):
  """(query tokens, query mask, doc tokens, doc mask, candidates, sizes)."""
  n = settings.pick(20_000, 5_000, 300)
  q = settings.pick(64, 16, 4)
  depth = settings.pick(1_000, 200, 30)
  rng = np.random.default_rng(seed)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  d_mask = np.arange(DOC_TOKENS)[None, :] < rng.integers(DOC_TOKENS // 3, DOC_TOKENS + 1, (n, 1))
  docs = (
    unit(rng.standard_normal((n, DOC_TOKENS, DIM), dtype=np.float32)) * d_mask[..., None]
  ).astype(np.float16)
  q_mask = np.arange(QUERY_TOKENS)[None, :] < rng.integers(8, QUERY_TOKENS + 1, (q, 1))
  queries = (
    unit(rng.standard_normal((q, QUERY_TOKENS, DIM), dtype=np.float32)) * q_mask[..., None]
  ).astype(np.float32)
  candidates = np.stack([rng.choice(n, depth, replace=False) for _ in range(q)])
  sizes = {
    "documents": n,
    "queries": q,
    "candidates_per_query": depth,
    "doc_tokens": DOC_TOKENS,
    "query_tokens": QUERY_TOKENS,
    "dims": DIM,
    "k": K,
    "mode": settings.mode,
  }
  return queries, q_mask, docs, d_mask, candidates, sizes


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import jax
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.rerank import rerank

  queries, q_mask, docs, d_mask, candidates, sizes = data(settings)
  q = Representations("maxsim", tokens=queries, mask=q_mask)
  d = Representations("maxsim", tokens=docs, mask=d_mask)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=rerank(q, d, candidates, k=K, progress=False)),
    settings.warmup(),
    settings.reps(5, 3, 1),
  )
  seconds = float(np.median(times))
  sizes["candidates_per_s"] = round(candidates.size / seconds, 1)
  return Side(
    times,
    first,
    label="ours",
    device=device_string(jax.devices()[0].device_kind),
    params=sizes,
    info={"top": out["r"][1][:, :10].tolist()},
  )


def torch_colbert(settings: Settings, ours_info=None) -> Side:
  from bench.ot_step import import_torch

  torch, _ = import_torch()
  queries, q_mask, docs, d_mask, candidates, _ = data(settings)
  q_t, qm_t = torch.from_numpy(queries), torch.from_numpy(q_mask)
  out = {}
  k = min(K, candidates.shape[1])

  def run():
    top = np.zeros((len(queries), k), np.int64)
    with torch.inference_mode():
      for i, cand in enumerate(candidates):
        d = torch.from_numpy(docs[cand].astype(np.float32))  # [K, Ld, p]
        dm = torch.from_numpy(d_mask[cand])
        sim = torch.einsum("ip,kjp->kij", q_t[i], d)
        sim = sim.masked_fill(~dm[:, None, :], float("-inf"))
        best = sim.max(-1).values.masked_fill(~qm_t[i][None, :], 0.0)
        scores = best.sum(-1)
        top[i] = cand[torch.topk(scores, k).indices.numpy()]
    out["top"] = top

  first, times = time_calls(run, settings.warmup(), settings.reps(5, 3, 1))
  params = {
    "reference_threads": torch.get_num_threads(),
    "reference_candidates_per_s": round(candidates.size / float(np.median(times)), 1),
  }
  if ours_info and "top" in ours_info:
    params["same_top10_fraction"] = float(
      np.mean(np.asarray(ours_info["top"]) == out["top"][:, :10])
    )
  return Side(
    times,
    first,
    label=f"torch {torch.__version__} ColBERT-style einsum MaxSim, per query",
    device=device_string(),
    params=params,
  )
