"""The gap study's outputs: ``results.csv``, ``report.md`` and ``gap.png``.

Input is one "cell" per (encoder, method, language): the per-query scores and
means that ``study.py`` writes as JSON. Significance: per language, a paired
t-test across queries of each method against zero-shot and against the best
KD baseline (the KD method with the highest mean over all languages), with
the Holm-Bonferroni correction applied over all tests of one encoder.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

from optical_jax.evaluation import stats
from optical_jax.io import atomic_write_text

KD_METHODS = ("kd_sentence", "kd_token")


def load_cells(cells_dir) -> List[dict]:
  return [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(cells_dir).rglob("*.json"))
  ]


def write_csv(cells: Sequence[dict], path, measures: Sequence[str]) -> None:
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["encoder", "method", "lang", "resource", *measures, "queries", "missing_queries"])
  for c in cells:
    w.writerow(
      [
        c["encoder"],
        c["method"],
        c["lang"],
        c["resource"],
        *[f"{c['mean'][m]:.6f}" for m in measures],
        c["num_queries"],
        len(c["missing_queries"]),
      ]
    )
  atomic_write_text(path, buf.getvalue())


def analyse(
  cells: Sequence[dict],
  low: Sequence[str],
  high: Sequence[str],
  metric: str,
  samples: int = 2000,
  seed: int = 0,
) -> Dict[str, dict]:
  """encoder -> {"methods", "table", "gaps", "intervals", "tests", "best_kd"}."""
  out = {}
  for enc in sorted({c["encoder"] for c in cells}):
    mine = [c for c in cells if c["encoder"] == enc]
    methods = [
      m
      for m in ("zero_shot", "kd_sentence", "kd_token", "optical")
      if any(c["method"] == m for c in mine)
    ]
    methods += sorted({c["method"] for c in mine} - set(methods))
    langs = [
      l
      for l in list(low) + list(high)
      if all(any(c["method"] == m and c["lang"] == l for c in mine) for m in methods)
    ]
    lo, hi = [l for l in low if l in langs], [l for l in high if l in langs]
    pq = {m: {c["lang"]: c["per_query"][metric] for c in mine if c["method"] == m} for m in methods}
    qids = {l: next(c["qids"] for c in mine if c["lang"] == l) for l in langs}
    table = {
      m: {
        l: next(c["mean"][metric] for c in mine if c["method"] == m and c["lang"] == l)
        for l in langs
      }
      for m in methods
    }
    kd = [m for m in methods if m in KD_METHODS]
    best_kd = max(kd, key=lambda m: sum(table[m].values())) if kd else None
    tests, raw = {}, []
    for m in methods:
      for ref in ("zero_shot", best_kd):
        if ref is None or ref == m or ref not in methods or m == "zero_shot":
          continue
        for l in langs:
          p = stats.paired_t_test(pq[m][l], pq[ref][l], qids[l])
          tests[(m, ref, l)] = {"p": p}
          raw.append((m, ref, l))
    if raw:
      for key, adj in zip(raw, stats.holm([tests[k]["p"] for k in raw])):
        tests[key]["p_holm"] = float(adj)
    gaps = {m: stats.gap(table[m], hi, lo) for m in methods} if lo and hi else {}
    intervals = (
      stats.bootstrap_gaps(
        pq,
        qids,
        hi,
        lo,
        reference="zero_shot" if "zero_shot" in methods else None,
        samples=samples,
        seed=seed,
      )
      if gaps
      else {}
    )
    out[enc] = dict(
      methods=methods,
      langs=langs,
      low=lo,
      high=hi,
      table=table,
      gaps=gaps,
      intervals=intervals,
      tests=tests,
      best_kd=best_kd,
      qids=qids,
    )
  return out


def _fmt(x: float) -> str:
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def write_report(analysis: Dict[str, dict], path, metric: str, header: str) -> None:
  lines = [header, ""]
  for enc, a in analysis.items():
    lines += [
      f"## {enc}",
      "",
      f"{metric} per query language (low-resource first). "
      "Markers: `*` significantly different from zero-shot, `+` from the best KD baseline "
      f"({a['best_kd'] or 'none'}); paired t-test over queries, Holm-corrected p < 0.05 over "
      f"all {len(a['tests'])} tests of this encoder.",
      "",
    ]
    lines.append("| lang | resource | " + " | ".join(a["methods"]) + " |")
    lines.append("|---|---|" + "---|" * len(a["methods"]))
    for l in a["langs"]:
      cells = []
      for m in a["methods"]:
        mark = ""
        for ref, sym in (("zero_shot", "*"), (a["best_kd"], "+")):
          t = a["tests"].get((m, ref, l))
          if t and t.get("p_holm", 1.0) < 0.05:
            mark += sym
        cells.append(f"{a['table'][m][l]:.4f}{mark}")
      lines.append(f"| {l} | {'low' if l in a['low'] else 'high'} | " + " | ".join(cells) + " |")
    if a["gaps"]:
      lines += [
        "",
        f"Gap = mean {metric} over high-resource languages ({', '.join(a['high'])}) minus "
        f"mean over low-resource ones ({', '.join(a['low'])}); relative gap = gap / high. "
        "95% bootstrap intervals over queries (resampled jointly across languages and methods "
        "where they share query ids).",
        "",
        "| method | high | low | gap [95% CI] | relative gap [95% CI] | change in gap vs zero-shot [95% CI] |",
        "|---|---|---|---|---|---|",
      ]
      for m in a["methods"]:
        g, iv = a["gaps"][m], a["intervals"].get(m, {})
        gi, ri, di = iv.get("gap"), iv.get("relative_gap"), iv.get("delta_gap")
        delta = (
          f"{g['gap'] - a['gaps']['zero_shot']['gap']:+.4f} [{di[0]:+.4f}, {di[1]:+.4f}]"
          if di and "zero_shot" in a["gaps"]
          else "—"
        )
        lines.append(
          f"| {m} | {_fmt(g['high'])} | {_fmt(g['low'])} | {g['gap']:.4f} "
          f"[{gi[0]:.4f}, {gi[1]:.4f}] | {g['relative_gap']:.3f} [{ri[0]:.3f}, {ri[1]:.3f}] "
          f"| {delta} |"
        )
    lines += ["", "p-values (paired t-test, raw / Holm):", ""]
    for (m, ref, l), t in sorted(a["tests"].items()):
      lines.append(f"- {m} vs {ref}, {l}: {t['p']:.3g} / {t.get('p_holm', float('nan')):.3g}")
    lines.append("")
  atomic_write_text(path, "\n".join(lines) + "\n")


def plot(analysis: Dict[str, dict], path, metric: str) -> None:
  """Left: each method's metric per language (low-resource shaded); right: the gap with 95% CIs."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  encs = list(analysis)
  fig, axes = plt.subplots(
    len(encs), 2, figsize=(13, 4.2 * len(encs)), squeeze=False, gridspec_kw={"width_ratios": [3, 1]}
  )
  colors = {
    "zero_shot": "#7f7f7f",
    "kd_sentence": "#1f77b4",
    "kd_token": "#2ca02c",
    "optical": "#d62728",
  }
  for row, enc in enumerate(encs):
    a = analysis[enc]
    ax, gx = axes[row]
    n = len(a["methods"])
    width = 0.8 / max(n, 1)
    xs = range(len(a["langs"]))
    if a["low"]:
      ax.axvspan(-0.5, len(a["low"]) - 0.5, color="#fde0dd", alpha=0.5, label="low-resource")
    for i, m in enumerate(a["methods"]):
      ax.bar(
        [x + (i - (n - 1) / 2) * width for x in xs],
        [a["table"][m][l] for l in a["langs"]],
        width,
        label=m,
        color=colors.get(m),
      )
    ax.set_xticks(list(xs), a["langs"])
    ax.set_ylabel(metric)
    ax.set_title(f"{enc if len(enc) <= 48 else '...' + enc[-45:]}: {metric} by query language")
    ax.legend(fontsize=8, ncol=n + 1, loc="upper left")
    for i, m in enumerate(a["methods"]):
      if m not in a["gaps"]:
        continue
      g = a["gaps"][m]["gap"]
      lo, hi = a["intervals"][m]["gap"]
      gx.errorbar([i], [g], yerr=[[g - lo], [hi - g]], fmt="o", color=colors.get(m), capsize=4)
    gx.set_xticks(range(n), a["methods"], rotation=30, ha="right")
    gx.axhline(0, color="black", lw=0.5)
    gx.set_title(f"gap (high - low) {metric}, 95% CI")
  fig.tight_layout()
  path = Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  fig.savefig(tmp, dpi=120, format="png")
  tmp.replace(path)
  plt.close(fig)
