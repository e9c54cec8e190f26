"""The studies' outputs (``python study.py``, ``optical_jax/studies/``): ``report.md``,
``results.csv`` and ``gap.png`` written from a study's analysis.

* **The gap study** (``studies/gap_grid.py``): input is one "cell" per (encoder, method,
  language), the per-query scores and means the study writes as JSON (:func:`load_cells`);
  :func:`write_gap_csv`, :func:`write_gap_report` and :func:`plot_gap` write the table, the
  high/low-resource gap with its intervals and the tests (Holm-corrected) per encoder.
* **The AfriQA study** (``studies/afriqa_grid.py``): from its analysis (per method and language,
  the fraction of the oracle gap closed with intervals and paired tests; FLORES-200 devtest),
  :func:`write_afriqa_report` writes ``report.md``, ``results.csv``, ``gap.png`` and the
  figures of ``evaluation/figures.py``, ``dumbbell.png`` and ``forest.png`` (for a ranker
  other than dense ``report.<ranker>.md`` ..., :func:`afriqa_paths`), and
  :func:`afriqa_teachers_table` the teacher axis (``teachers.md``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from optical_jax.evaluation import figures
from optical_jax.io import atomic_write_text


def load_cells(cells_dir) -> List[dict]:
  return [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(cells_dir).rglob("*.json"))
  ]


def write_gap_csv(cells: Sequence[dict], path, measures: Sequence[str]) -> None:
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


def _fmt(x: float) -> str:
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def write_gap_report(analysis: Dict[str, dict], path, metric: str, header: str) -> None:
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


def plot_gap(analysis: Dict[str, dict], path, metric: str) -> None:
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


def sample_std(values) -> float:
  """The sample standard deviation (0 for one value)."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ci(x) -> str:
  return f"[{x[0]:+.3f}, {x[1]:+.3f}]"


def afriqa_paths(work: Path, ranker: str) -> Dict[str, Path]:
  """Where the report of ``ranker`` goes: ``report.md``, ``results.csv``, ``gap.png`` for the
  dense ranker, ``report.<ranker>.md`` ... for another (so both reports can sit side by side)."""
  tag = "" if ranker == "dense" else f".{ranker}"
  return {
    "report": work / f"report{tag}.md",
    "csv": work / f"results{tag}.csv",
    "plot": work / f"gap{tag}.png",
    "dumbbell": work / f"dumbbell{tag}.png",
    "forest": work / f"forest{tag}.png",
  }


def afriqa_teachers_table(analyses: Dict[str, dict], focus: List[str], student: str) -> str:
  """Markdown: per teacher, its oracle (English questions, its own documents) and zero-shot
  native MAP over the focus languages, and each method's MAP and fraction of that teacher's
  gap closed (focus languages pooled, 95% interval). ``student``: the student's model."""
  lines = [
    "# AfriQA study: the teacher axis",
    "",
    "Documents are encoded by the teacher; the oracle is the teacher on the English "
    "translations of the questions; zero-shot is the teacher on the native questions "
    f"(focus languages {', '.join(focus)}; MAP averaged over them and over seeds). The "
    "gap closed is each teacher's own.",
    "",
    "| teacher | oracle (English questions) | method | seeds | native MAP | closed [95% CI] |",
    "|---|---|---|---|---|---|",
  ]
  for model, a in analyses.items():
    langs = [l for l in focus if l in a["langs"]]
    oracle = float(np.mean([a["english_zero_shot"][l] for l in langs]))
    for m, r in a["methods"].items():
      sub = _focus(r, langs)
      native = float(np.mean([r["closed"]["langs"][l]["native_method"] for l in langs]))
      lines.append(
        f"| {model or 'self (' + student + ')'} | {oracle:.3f} | {m} | "
        f"{r['seeds']} | {native:.3f} | {sub['closed_pooled']:+.3f} "
        f"{_ci(sub['closed_pooled_ci'])} |"
      )
  return "\n".join(lines) + "\n"


def write_afriqa_report(a: dict, focus_langs: List[str], work: Path) -> None:
  """``report.md``, ``results.csv`` and ``gap.png`` (:func:`afriqa_paths`) in ``work`` from the
  AfriQA study's analysis (``afriqa_grid.analyse``); the headline pools ``focus_langs``."""
  langs, methods = a["langs"], a["methods"]
  focus = [l for l in focus_langs if l in langs]
  lines = [
    f"# AfriQA study ({a['ranker']} ranker)",
    "",
    a["description"],
    "",
    f"License of the collection: {a['license']}. Bitext and its licenses: each run's "
    "`bitext_manifest.json`.",
    "",
    "MAP of the native questions (mean over seeds) and, in brackets, the fraction of the "
    "oracle gap closed, (MAP_method - MAP_zero-shot) / (MAP_zero-shot(English question) - "
    "MAP_zero-shot(native question)).",
    "",
  ]
  lines.append("| method | seeds | " + " | ".join(langs) + " |")
  lines.append("|---|---|" + "---|" * len(langs))
  for m, r in methods.items():
    lines.append(
      f"| {m} | {r['seeds']} | "
      + " | ".join(
        f"{r['closed']['langs'][l]['native_method']:.3f} ({r['closed']['langs'][l]['closed']:+.2f})"
        for l in langs
      )
      + " |"
    )
  lines.append(
    "| English question, zero-shot | | "
    + " | ".join(f"{a['english_zero_shot'][l]:.3f}" for l in langs)
    + " |"
  )
  lines += [
    "",
    f"Fraction of the oracle gap closed over {', '.join(focus)} (the languages with "
    "bitext), pooled (mean gain / mean gap): seed-averaged scores with a 95% bootstrap "
    "interval over questions; per-seed mean ± standard deviation. All languages: the "
    "same over every language above.",
    "",
    "| method | closed, focus languages [95% CI] | per seed | closed, all languages "
    "[95% CI] | p vs zero-shot | p vs best KD | mean English-question MAP |",
    "|---|---|---|---|---|---|---|",
  ]
  for m, r in methods.items():
    sub = _focus(r, focus)
    p0 = r.get("vs_zero_shot", {}).get("all")
    pk = r.get("vs_best_kd", {}).get("all")
    lines.append(
      f"| {m} | {sub['closed_pooled']:+.3f} {_ci(sub['closed_pooled_ci'])} | "
      f"{np.mean(sub['per_seed']):+.3f} ± {sample_std(sub['per_seed']):.3f} | "
      f"{r['closed']['closed_pooled']:+.3f} {_ci(r['closed']['closed_pooled_ci'])} | "
      f"{'—' if p0 is None else f'{p0:.2g}'} | {'—' if pk is None else f'{pk:.2g}'} | "
      f"{np.mean(list(r['english_student'].values())):.3f} |"
    )
  lines += [
    "",
    f"Best KD baseline: {a['best_kd'] or 'none'} (for an interpolated row, the best KD "
    "baseline interpolated by the same weight). Paired two-sided t-tests over the "
    "questions of all languages pooled, on seed-averaged per-question MAP.",
    "",
  ]
  if a["flores"]:
    fl = a["flores"]
    fl_langs = list(next(iter(fl.values())))
    lines += [
      "## FLORES-200 devtest (sentence retrieval; a known-item test built from "
      "translations, never trained on)",
      "",
      "MAP per language, mean over the seeds that ran this check ("
      + ", ".join(f"{m}: {next(iter(fl[m].values()))['seeds']}" for m in fl)
      + "), and in "
      "brackets the change from zero-shot.",
      "",
      "| lang | resource | " + " | ".join(fl) + " |",
      "|---|---|" + "---|" * len(fl),
    ]
    for l in fl_langs:
      lines.append(
        f"| {l} | {fl[next(iter(fl))][l]['resource']} | "
        + " | ".join(
          f"{fl[m][l]['student']:.4f} ({fl[m][l]['student'] - fl[m][l]['zero_shot']:+.4f})"
          for m in fl
        )
        + " |"
      )
    lines += [
      "",
      "| method | high mean | low mean | gap | change in gap | worst high-resource "
      "change (any seed) |",
      "|---|---|---|---|---|---|",
    ]
    zs_gap = None
    for m in fl:
      hi = [fl[m][l]["student"] for l in fl_langs if fl[m][l]["resource"] == "high"]
      lo = [fl[m][l]["student"] for l in fl_langs if fl[m][l]["resource"] != "high"]
      g = float(np.mean(hi) - np.mean(lo))
      zs_gap = g if zs_gap is None and m == "zero_shot" else zs_gap
      worst = min(fl[m][l]["min_delta"] for l in fl_langs if fl[m][l]["resource"] == "high")
      lines.append(
        f"| {m} | {np.mean(hi):.4f} | {np.mean(lo):.4f} | {g:.4f} | "
        f"{'—' if zs_gap is None or m == 'zero_shot' else f'{g - zs_gap:+.4f}'} | "
        f"{worst:+.4f} |"
      )
  paths = afriqa_paths(work, a["ranker"])
  atomic_write_text(paths["report"], "\n".join(lines) + "\n")
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(
    [
      "method",
      "lang",
      "seeds",
      "native_map",
      "zero_shot_map",
      "english_zero_shot_map",
      "closed",
      "closed_ci_low",
      "closed_ci_high",
    ]
  )
  for m, r in methods.items():
    for l in langs:
      x = r["closed"]["langs"][l]
      w.writerow(
        [
          m,
          l,
          r["seeds"],
          f"{x['native_method']:.6f}",
          f"{x['native_zero_shot']:.6f}",
          f"{x['english_zero_shot']:.6f}",
          f"{x['closed']:.4f}",
          f"{x['closed_ci'][0]:.4f}",
          f"{x['closed_ci'][1]:.4f}",
        ]
      )
  atomic_write_text(paths["csv"], buf.getvalue())
  _plot_afriqa(a, paths["plot"])
  figures.plot_dumbbell(a, paths["dumbbell"])
  figures.plot_forest(a, focus, paths["forest"], _focus)


def _focus(r: dict, focus: List[str]) -> dict:
  """The pooled fraction closed over the ``focus`` languages (seed-averaged, with its interval)
  and per seed (each seed's gains over the zero-shot gaps)."""
  c = r["closed_focus"]
  gaps = {l: c["langs"][l]["gap"] for l in focus}
  per_seed = [
    float(
      np.mean([r["closed_per_seed_lang"][l][i] * gaps[l] for l in focus])
      / np.mean(list(gaps.values()))
    )
    for i in range(r["seeds"])
  ]
  return {
    "closed_pooled": c["closed_pooled"],
    "closed_pooled_ci": c["closed_pooled_ci"],
    "per_seed": per_seed,
  }


def _plot_afriqa(a: dict, path: Path) -> None:
  """Per language, each method's fraction of the oracle gap closed with its 95% interval."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  langs, methods = a["langs"], [m for m in a["methods"] if m != "zero_shot"]
  fig, ax = plt.subplots(figsize=(11, 4.2))
  width = 0.8 / max(len(methods), 1)
  for i, m in enumerate(methods):
    c = a["methods"][m]["closed"]["langs"]
    xs = [x + (i - (len(methods) - 1) / 2) * width for x in range(len(langs))]
    ys = [c[l]["closed"] for l in langs]
    err = [
      [y - c[l]["closed_ci"][0] for y, l in zip(ys, langs)],
      [c[l]["closed_ci"][1] - y for y, l in zip(ys, langs)],
    ]
    ax.bar(xs, ys, width, label=m, yerr=err, capsize=3)
  ax.axhline(0, color="black", lw=0.5)
  ax.axhline(0.5, color="grey", lw=0.5, ls="--")
  ax.set_xticks(range(len(langs)), langs)
  ax.set_ylabel("fraction of the oracle gap closed")
  ax.set_title(
    f"AfriQA: native question vs its English translation ({a['ranker']} ranker; "
    "95% CI over questions)"
  )
  ax.legend(fontsize=8)
  fig.tight_layout()
  tmp = path.with_name(f".{path.name}.tmp")
  fig.savefig(tmp, dpi=120, format="png")
  tmp.replace(path)
  plt.close(fig)
