"""The oracle gap of a collection whose native queries have human English translations (AfriQA).

For language ``l``, with per-query scores (MAP by default; trec_eval ``-c``: a query missing from a
run scores 0) on the same questions and passages:

* ``oracle_gap_l = M_zs(English_l) - M_zs(native_l)``: what zero-shot loses by the question
  being written in ``l`` instead of English;
* ``gain_l = M_method(native_l) - M_zs(native_l)``;
* ``closed_l = gain_l / oracle_gap_l``: the fraction of that gap the method closes (1 = the
  native question does as well as its English translation did zero-shot; it can exceed 1 or be
  negative).

Over a set of languages two averages are reported: ``closed_macro`` (the mean of the
per-language fractions) and ``closed_pooled`` (mean gain over mean gap), which weighs
languages by their gap and does not blow up for a language whose gap is small. The 95% intervals
come from a bootstrap over questions, resampled within each language, the same draw for the
method, zero-shot and English scores of a question (paired). Paired t-tests over the questions
compare a method against zero-shot and against another method (``stats.paired_t_test``).

Pure functions of per-query scores; no model code.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from optical_jax.evaluation.stats import _interval, paired_t_test

PerQuery = Mapping[str, float]


def _arrays(native: Mapping[str, PerQuery], qids: Mapping[str, Sequence[str]]):
  return {l: np.asarray([native[l].get(q, 0.0) for q in qids[l]], np.float64) for l in qids}


def closed_fraction(
  method: Mapping[str, PerQuery],
  zero_shot: Mapping[str, PerQuery],
  english: Mapping[str, PerQuery],
  qids: Mapping[str, Sequence[str]],
  samples: int = 2000,
  seed: int = 0,
) -> Dict[str, object]:
  """Per-language and averaged fractions of the oracle gap closed, with bootstrap intervals.

  Args:
    method, zero_shot: language -> {native qid: score}.
    english: language -> {native qid: zero-shot score of its English translation} (keyed by
      the native qid).
    qids: language -> the native qids that count (every judged test question).
  Returns ``{"langs": {l: {...}}, "closed_macro", "closed_pooled", "*_ci", "gain", "gap"}``.
  """
  langs = list(qids)
  m, z, e = _arrays(method, qids), _arrays(zero_shot, qids), _arrays(english, qids)
  out = {"langs": {}}
  for l in langs:
    gap, gain = e[l].mean() - z[l].mean(), m[l].mean() - z[l].mean()
    out["langs"][l] = {
      "n": len(qids[l]),
      "native_zero_shot": z[l].mean(),
      "english_zero_shot": e[l].mean(),
      "native_method": m[l].mean(),
      "gap": gap,
      "gain": gain,
      "closed": gain / gap if gap else float("nan"),
    }
  gaps = np.asarray([out["langs"][l]["gap"] for l in langs])
  gains = np.asarray([out["langs"][l]["gain"] for l in langs])
  out["gap"], out["gain"] = float(gaps.mean()), float(gains.mean())
  out["closed_pooled"] = float(gains.mean() / gaps.mean()) if gaps.mean() else float("nan")
  out["closed_macro"] = float(np.mean([out["langs"][l]["closed"] for l in langs]))
  rng = np.random.default_rng(seed)
  draws = {"pooled": [], "macro": [], **{l: [] for l in langs}}
  for _ in range(samples):
    g, d = [], []
    for l in langs:
      pick = rng.integers(0, len(qids[l]), len(qids[l]))
      gap_l = e[l][pick].mean() - z[l][pick].mean()
      gain_l = m[l][pick].mean() - z[l][pick].mean()
      g.append(gap_l)
      d.append(gain_l)
      draws[l].append(gain_l / gap_l if gap_l else np.nan)
    draws["pooled"].append(np.mean(d) / np.mean(g) if np.mean(g) else np.nan)
    draws["macro"].append(np.nanmean([draws[l][-1] for l in langs]))
  out["closed_pooled_ci"] = _interval(draws["pooled"])
  out["closed_macro_ci"] = _interval(draws["macro"])
  for l in langs:
    out["langs"][l]["closed_ci"] = _interval(draws[l])
    out["langs"][l] = {
      k: (float(v) if isinstance(v, (float, np.floating)) else v)
      for k, v in out["langs"][l].items()
    }
  return out


def paired_tests(
  a: Mapping[str, PerQuery], b: Mapping[str, PerQuery], qids: Mapping[str, Sequence[str]]
) -> Dict[str, float]:
  """Two-sided paired t-test p-values of ``a`` vs ``b``: per language and over all the
  questions of the languages pooled (key ``"all"``); with the mean difference."""
  out = {l: paired_t_test(a[l], b[l], qids[l]) for l in qids}
  flat_a = {f"{l}\t{q}": a[l].get(q, 0.0) for l in qids for q in qids[l]}
  flat_b = {f"{l}\t{q}": b[l].get(q, 0.0) for l in qids for q in qids[l]}
  out["all"] = paired_t_test(flat_a, flat_b, list(flat_a))
  out["mean_difference"] = float(np.mean([flat_a[k] - flat_b[k] for k in flat_a]))
  return out


def english_by_native(
  english_run_scores: PerQuery, qids: Mapping[str, Sequence[str]], suffix: str
) -> Dict[str, Dict[str, float]]:
  """Per-query scores of the English query set (keyed ``qid + suffix``) -> language ->
  {native qid: score}; a translation missing from the scores counts 0 (trec_eval -c)."""
  return {l: {q: float(english_run_scores.get(q + suffix, 0.0)) for q in qids[l]} for l in qids}


def format_table(
  rows: Mapping[str, Mapping[str, object]],
  langs: Sequence[str],
  metric: str = "MAP",
  reference: Optional[str] = None,
) -> str:
  """Markdown: per method, each language's native score and fraction closed, and the averages.

  ``rows``: method -> :func:`closed_fraction` output."""
  head = (
    "| method | "
    + " | ".join(f"{l} {metric} (closed)" for l in langs)
    + " | mean gain | closed, pooled [95% CI] | closed, macro [95% CI] |"
  )
  lines = [head, "|---|" + "---|" * (len(langs) + 3)]
  for name, r in rows.items():
    cells = [
      f"{r['langs'][l]['native_method']:.3f} ({r['langs'][l]['closed']:+.2f})" for l in langs
    ]
    lo, hi = r["closed_pooled_ci"]
    mlo, mhi = r["closed_macro_ci"]
    lines.append(
      f"| {name} | " + " | ".join(cells) + f" | {r['gain']:+.4f} | "
      f"{r['closed_pooled']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
      f"{r['closed_macro']:+.3f} [{mlo:+.3f}, {mhi:+.3f}] |"
    )
  if rows:
    first = next(iter(rows.values()))
    lines.append(
      "| (zero-shot native / English) | "
      + " | ".join(
        f"{first['langs'][l]['native_zero_shot']:.3f} / {first['langs'][l]['english_zero_shot']:.3f}"
        for l in langs
      )
      + f" | gap {first['gap']:.4f} | | |"
    )
  return "\n".join(lines)
