"""Statistics for the gap study: paired tests across queries, multiple-test
correction, and bootstrap confidence intervals on the high/low-resource gap.

* Paired two-sided t-test over queries (``scipy.stats.ttest_rel``), the usual
  IR significance test; queries are paired by id, and a query missing from
  either side counts as 0 (trec_eval ``-c``).
* Holm-Bonferroni step-down correction over a family of p-values (controls the
  family-wise error rate; less conservative than plain Bonferroni).
* The gap for one method: ``mean_{h in high} M_h - mean_{l in low} M_l`` where
  ``M_x`` is the language's mean metric over its queries; relative gap =
  gap / mean over high. The bootstrap resamples queries with replacement,
  jointly across languages and methods when they share query ids (NTREX: the
  same documents are queried in every language), else per language; the 95%
  interval is the 2.5th to 97.5th percentile of 2,000 resamples.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

PerQuery = Mapping[str, float]


def paired_t_test(a: PerQuery, b: PerQuery, qids: Sequence[str]) -> float:
  """Two-sided p-value of a paired t-test of ``a`` vs ``b`` over ``qids``.
  Identical score vectors give p = 1."""
  from scipy import stats  # pylint: disable=import-outside-toplevel

  x = np.asarray([a.get(q, 0.0) for q in qids], np.float64)
  y = np.asarray([b.get(q, 0.0) for q in qids], np.float64)
  if len(qids) < 2 or np.allclose(x - y, (x - y)[0]):
    return 1.0 if np.allclose(x, y) else 0.0
  return float(stats.ttest_rel(x, y).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
  """Holm-Bonferroni adjusted p-values (same order as given)."""
  p = np.asarray(pvalues, np.float64)
  m = len(p)
  order = np.argsort(p)
  adjusted = np.empty(m)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p[i]))
    adjusted[i] = running
  return adjusted


def gap(
  per_lang_mean: Mapping[str, float], high: Sequence[str], low: Sequence[str]
) -> Dict[str, float]:
  """``{"high", "low", "gap", "relative_gap"}`` from per-language means."""
  h = float(np.mean([per_lang_mean[l] for l in high]))
  lo = float(np.mean([per_lang_mean[l] for l in low]))
  return {"high": h, "low": lo, "gap": h - lo, "relative_gap": (h - lo) / h if h else float("nan")}


def bootstrap_gaps(
  per_query: Mapping[str, Mapping[str, PerQuery]],
  qids: Mapping[str, Sequence[str]],
  high: Sequence[str],
  low: Sequence[str],
  reference: str | None = None,
  samples: int = 2000,
  seed: int = 0,
) -> Dict[str, Dict[str, Tuple[float, float]]]:
  """95% bootstrap intervals of each method's gap (and of its change from ``reference``).

  Args:
    per_query: method -> language -> {qid: score}.
    qids: language -> the queries that count (all qrels queries).
    high, low: language lists.
    reference: a method (e.g. zero_shot) to report ``delta_gap`` against.
  Returns:
    method -> {"gap": (lo, hi), "relative_gap": (lo, hi), ["delta_gap": (lo, hi)]}.
  """
  rng = np.random.default_rng(seed)
  langs = list(high) + list(low)
  shared = all(sorted(qids[l]) == sorted(qids[langs[0]]) for l in langs)
  arrays = {
    m: {l: np.asarray([per_query[m][l].get(q, 0.0) for q in qids[l]]) for l in langs}
    for m in per_query
  }
  draws = {m: {"gap": [], "relative_gap": []} for m in per_query}
  for _ in range(samples):
    if shared:
      pick = rng.integers(0, len(qids[langs[0]]), len(qids[langs[0]]))
      picks = {l: pick for l in langs}
    else:
      picks = {l: rng.integers(0, len(qids[l]), len(qids[l])) for l in langs}
    for m in per_query:
      means = {l: arrays[m][l][picks[l]].mean() for l in langs}
      g = gap(means, high, low)
      draws[m]["gap"].append(g["gap"])
      draws[m]["relative_gap"].append(g["relative_gap"])
  out = {}
  for m, d in draws.items():
    out[m] = {k: _interval(v) for k, v in d.items()}
    if reference is not None and reference in draws and m != reference:
      out[m]["delta_gap"] = _interval(np.asarray(d["gap"]) - np.asarray(draws[reference]["gap"]))
  return out


def _interval(values) -> Tuple[float, float]:
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if not len(v):
    return (float("nan"), float("nan"))
  return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))
