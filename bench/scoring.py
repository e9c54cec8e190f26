"""``scoring_1000x1000``: scoring a run of 1,000 queries x 1,000 retrieved documents.

The run has random scores; the qrels judge 20 documents per query (graded
0-2, about a third of them not retrieved), plus 1% of queries judged but
absent from the run (trec_eval ``-c`` scores them 0).

Both run on the host CPU (no JAX involved), so the row's device is the CPU.

* **Ours:** ``optical_jax.evaluation.metrics.evaluate(run, qrels,
  ("MAP", "nDCG@10", "P@10", "MRR"))``: ``ir_measures`` on its pytrec_eval
  backend, plus the ``-c`` fill-in, per-query tables and means.
* **Reference:** ``pytrec_eval.RelevanceEvaluator(qrels, {"map",
  "ndcg_cut_10", "P_10", "recip_rank"}).evaluate(run)`` called directly, then
  the mean of each measure over the scored queries (no ``-c`` fill-in).
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, time_calls

MEASURES = ("MAP", "nDCG@10", "P@10", "MRR")
TREC_MEASURES = {"MAP": "map", "nDCG@10": "ndcg_cut_10", "P@10": "P_10", "MRR": "recip_rank"}


def run_and_qrels(settings: Settings, seed: int = 0):
  """(run, qrels, sizes): random, identical in every process."""
  nq, nd = settings.pick(1000, 1000, 50), settings.pick(1000, 1000, 100)
  collection = 10 * nd
  rng = np.random.default_rng(seed)
  run, qrels = {}, {}
  for q in range(nq):
    docs = rng.choice(collection, size=nd, replace=False)
    scores = rng.standard_normal(nd)
    qid = f"q{q}"
    if q % 100 != 99:  # 1% judged but missing from the run
      run[qid] = {f"d{d}": float(s) for d, s in zip(docs, scores)}
    judged = np.concatenate(
      [rng.choice(docs, size=13, replace=False), rng.choice(collection, size=7, replace=False)]
    )
    qrels[qid] = {f"d{d}": int(r) for d, r in zip(judged, rng.integers(0, 3, size=len(judged)))}
  return (
    run,
    qrels,
    {
      "queries": nq,
      "docs_per_query": nd,
      "judged_per_query": 20,
      "measures": list(MEASURES),
      "mode": settings.mode,
    },
  )


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  from optical_jax.evaluation.metrics import evaluate

  run, qrels, sizes = run_and_qrels(settings)
  out = {}
  first, times = time_calls(
    lambda: out.update(r=evaluate(run, qrels, MEASURES)), settings.warmup(), settings.reps(10, 3, 2)
  )
  means = {k: round(v, 6) for k, v in out["r"].mean.items()}
  return Side(
    times,
    first,
    label="ours",
    device=device_string(),
    params={**sizes, "ours_means": means},
    info={"means": out["r"].mean},
  )


def pytrec(settings: Settings, ours_info=None) -> Side:
  try:
    import pytrec_eval
  except ImportError as e:
    raise Unavailable(f"pytrec_eval not importable: {e}") from e
  run, qrels, _ = run_and_qrels(settings)
  out = {}

  def score():
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES.values())).evaluate(run)
    out["means"] = {
      name: float(np.mean([v[m] for v in per_query.values()])) for name, m in TREC_MEASURES.items()
    }

  first, times = time_calls(score, settings.warmup(), settings.reps(10, 3, 2))
  # Ours averages over every judged query (-c); the reference over the scored ones only.
  params = {
    "reference_means_over_scored_queries": {k: round(v, 6) for k, v in out["means"].items()}
  }
  if ours_info and "means" in ours_info:
    scale = len([q for q in qrels if q in run]) / len(qrels)
    params["max_abs_diff_after_-c_rescaling"] = max(
      abs(ours_info["means"][k] - out["means"][k] * scale) for k in TREC_MEASURES
    )
  return Side(times, first, label="pytrec_eval RelevanceEvaluator (direct)", params=params)
