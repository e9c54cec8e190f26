"""``maxsim_search``: exact MaxSim search over a whole collection, ours against a PyTorch
ColBERT-style scorer.

The same random data in every process, at the AfriQA dev shapes (``docs/PERFORMANCE.md``):
documents of 384-d float16 token vectors whose lengths follow the AfriQA passages' (a log-normal
of median 124 tokens, 16 to 512), stored padded to the longest; queries of 8 to 48 tokens (median
about 21); top 1,000. Full size: 3,620 queries x 3,071 documents (the AfriQA collection's
counts); ``--quick``: 400 x 1,000; ``--tiny``: 20 x 60.

* **Ours:** ``optical_jax.retrieval.search.search`` (kind maxsim): texts in order of length,
  blocks cut to their longest text, every query batch against each document block as one matmul,
  top-k on the host.
* **Reference:** exact late interaction as a ColBERT user writes it in PyTorch: queries in
  batches of 64 padded to the batch's longest, documents in chunks of 256 padded to the
  collection's longest text, float32 ``einsum("qip,djp->qdij")``, padding masked to -inf, max
  over document tokens, sum over real query tokens, scores of all documents kept and
  ``torch.topk``; ``torch.inference_mode()``, the same thread count. The row checks that both
  find the same top 10.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, device_string, time_calls

DIM, K = 384, 1000


def data(settings: Settings, seed: int = 0):
  """(query tokens float32, query mask, doc tokens float16, doc mask, sizes)."""
  n = settings.pick(3_071, 1_000, 60)
  q = settings.pick(3_620, 400, 20)
  rng = np.random.default_rng(seed)
  d_len = np.clip(rng.lognormal(np.log(124), 0.7, n), 16, 512).astype(int)
  q_len = np.clip(rng.lognormal(np.log(21), 0.35, q), 8, 48).astype(int)
  width = int(d_len.max())
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  d_mask = np.arange(width)[None, :] < d_len[:, None]
  docs = np.zeros((n, width, DIM), np.float16)
  for s in range(0, n, 256):  # in chunks: the float32 draw of all at once is 4.7 GB
    e = min(s + 256, n)
    x = unit(rng.standard_normal((e - s, width, DIM), dtype=np.float32))
    docs[s:e] = (x * d_mask[s:e, :, None]).astype(np.float16)
  q_mask = np.arange(int(q_len.max()))[None, :] < q_len[:, None]
  queries = (
    unit(rng.standard_normal((q, q_mask.shape[1], DIM), dtype=np.float32)) * q_mask[..., None]
  ).astype(np.float32)
  sizes = {
    "documents": n,
    "queries": q,
    "doc_tokens_mean": float(d_len.mean()),
    "doc_tokens_stored": width,
    "query_tokens_mean": float(q_len.mean()),
    "dims": DIM,
    "k": K,
    "mode": settings.mode,
    "token_pairs": int(q_len.sum()) * int(d_len.sum()),
  }
  return queries, q_mask, docs, d_mask, sizes


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import jax
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.search import search

  queries, q_mask, docs, d_mask, sizes = data(settings)
  q = Representations("maxsim", tokens=queries, mask=q_mask)
  d = Representations("maxsim", tokens=docs, mask=d_mask)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=search(q, d, k=K, progress=False)),
    settings.warmup(1, 1, 1),
    settings.reps(3, 3, 1),
  )
  seconds = float(np.median(times))
  sizes["real_gflop_per_s"] = round(2 * DIM * sizes["token_pairs"] / seconds / 1e9, 1)
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
  queries, q_mask, docs, d_mask, _ = data(settings)
  k = min(K, len(docs))
  out = {}

  def run():
    scores = torch.empty((len(queries), len(docs)))
    with torch.inference_mode():
      for ds in range(0, len(docs), 256):
        d = torch.from_numpy(docs[ds : ds + 256].astype(np.float32))
        dm = torch.from_numpy(d_mask[ds : ds + 256])
        for qs in range(0, len(queries), 64):
          qm = q_mask[qs : qs + 64]
          w = int(qm.sum(1).max())
          q = torch.from_numpy(queries[qs : qs + 64, :w])
          sim = torch.einsum("qip,djp->qdij", q, d)
          sim = sim.masked_fill(~dm[None, :, None, :], float("-inf"))
          best = sim.max(-1).values.masked_fill(~torch.from_numpy(qm[:, :w])[:, None, :], 0.0)
          scores[qs : qs + 64, ds : ds + 256] = best.sum(-1)
      out["top"] = torch.topk(scores, k, dim=1).indices.numpy()

  first, times = time_calls(run, settings.warmup(1, 1, 1), settings.reps(3, 3, 1))
  params = {"reference_threads": torch.get_num_threads()}
  if ours_info and "top" in ours_info:
    params["same_top10_fraction"] = float(
      np.mean(np.asarray(ours_info["top"]) == out["top"][:, :10])
    )
  return Side(
    times,
    first,
    label=f"torch {torch.__version__} ColBERT-style padded einsum MaxSim, batched",
    device=device_string(),
    params=params,
  )
