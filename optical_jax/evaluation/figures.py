"""The AfriQA study's two figures beside its bar chart (``evaluation/report.py``), from the study's
analysis (``studies/afriqa_grid.analyse``):

* ``dumbbell.png``: per language, the native questions' MAP zero-shot, with each method's student,
  and the English translations' MAP (the oracle) on one line, so the gap and how far each
  student moves along it are read directly;
* ``forest.png``: per method, the fraction of the oracle gap closed pooled over the focus
  languages with its 95% interval (over questions), and each seed's value as a dot.

Legends sit outside the axes, so they never cover data. Both files are written whole (a
temporary file, then renamed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

#: One colour and marker per method, in the order methods appear (an interpolated student,
#: ``method@alpha``, takes its method's, hollow); zero-shot and the oracle keep their own.
_STYLE = (
  ("tab:blue", "o"),
  ("tab:orange", "s"),
  ("tab:green", "^"),
  ("tab:red", "v"),
  ("tab:purple", "P"),
  ("tab:brown", "X"),
)


def method_styles(methods: Sequence[str]) -> Dict[str, dict]:
  """method -> scatter keywords (colour, marker, filled or hollow), one style per base method."""
  bases: List[str] = []
  for m in methods:
    if m.split("@")[0] not in bases:
      bases.append(m.split("@")[0])
  out = {}
  for m in methods:
    colour, marker = _STYLE[bases.index(m.split("@")[0]) % len(_STYLE)]
    hollow = "@" in m
    out[m] = dict(
      edgecolors=colour, facecolors="white" if hollow else colour, marker=marker,
      linewidths=1.4 if hollow else 0.5,
    )  # fmt: skip
  return out


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def _save(fig, path: Path) -> None:
  plt = _pyplot()
  tmp = path.with_name(f".{path.name}.tmp")
  fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")
  tmp.replace(path)
  plt.close(fig)


def dumbbell_points(a: dict) -> Dict[str, Dict[str, float]]:
  """lang -> {"zero-shot": native MAP, <method>: native MAP of its student, "English
  (oracle)": the English translations' MAP}, from the analysis (seed means)."""
  out = {}
  methods = [m for m in a["methods"] if m != "zero_shot"]
  for lang in a["langs"]:
    any_method = a["methods"][methods[0]]["closed"]["langs"][lang] if methods else None
    row = {
      "zero-shot": float(any_method["native_zero_shot"]) if any_method else float("nan"),
    }
    for m in methods:
      row[m] = float(a["methods"][m]["closed"]["langs"][lang]["native_method"])
    row["English (oracle)"] = float(any_method["english_zero_shot"]) if any_method else float("nan")
    out[lang] = row
  return out


def plot_dumbbell(a: dict, path: Path) -> None:
  """``dumbbell.png`` (module docstring): one row per language, MAP on the x axis."""
  plt = _pyplot()
  points = dumbbell_points(a)
  langs = list(points)
  methods = [m for m in a["methods"] if m != "zero_shot"]
  fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(langs) + 1.4))
  for y, lang in enumerate(langs):
    p = points[lang]
    ax.plot([p["zero-shot"], p["English (oracle)"]], [y, y], color="lightgrey", lw=3, zorder=1)
  ys = range(len(langs))
  ax.scatter(
    [points[l]["zero-shot"] for l in langs], ys, color="black", marker="o", label="zero-shot",
    zorder=3, facecolors="white",
  )  # fmt: skip
  styles = method_styles(methods)
  for i, m in enumerate(methods):
    offset = (i - (len(methods) - 1) / 2) * 0.1  # methods side by side on a language's row
    ax.scatter(
      [points[l][m] for l in langs], [y + offset for y in ys], label=m, zorder=4, s=28,
      **styles[m],
    )  # fmt: skip
  ax.scatter(
    [points[l]["English (oracle)"] for l in langs], ys, color="black", marker="D",
    label="English questions (oracle)", zorder=3, s=26,
  )  # fmt: skip
  ax.set_yticks(list(ys), langs)
  ax.invert_yaxis()
  ax.set_xlabel(f"MAP of the native questions ({a['ranker']} ranker; mean over seeds)")
  ax.set_title("AfriQA: zero-shot → student → English oracle, per language")
  ax.grid(axis="x", color="0.92")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
  _save(fig, path)


def forest_rows(a: dict, focus: Sequence[str], pooled) -> List[dict]:
  """Per trained method: its pooled fraction closed over ``focus`` with the interval and each
  seed's value. ``pooled(result, focus)`` is ``report._focus`` (passed in, to keep one
  definition of the pooling)."""
  rows = []
  for m, r in a["methods"].items():
    if m == "zero_shot":
      continue
    f = pooled(r, list(focus))
    rows.append(
      {
        "method": m,
        "closed": float(f["closed_pooled"]),
        "ci": [float(x) for x in f["closed_pooled_ci"]],
        "per_seed": [float(x) for x in f["per_seed"]],
      }
    )
  return rows


def plot_forest(a: dict, focus: Sequence[str], path: Path, pooled) -> None:
  """``forest.png`` (module docstring): one row per method."""
  plt = _pyplot()
  rows = forest_rows(a, focus, pooled)
  fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.5))
  for y, r in enumerate(rows):
    lo, hi = r["ci"]
    ax.plot([lo, hi], [y, y], color="black", lw=1.5, zorder=2)
    ax.scatter(
      [r["closed"]], [y], color="black", marker="D", s=36, zorder=3,
      label="pooled, 95% CI over questions" if y == 0 else None,
    )  # fmt: skip
    ax.scatter(
      r["per_seed"], [y + 0.18] * len(r["per_seed"]), color="tab:blue", s=16, alpha=0.8,
      zorder=3, label="one seed" if y == 0 else None,
    )  # fmt: skip
  ax.axvline(0, color="grey", lw=0.8)
  ax.set_yticks(range(len(rows)), [r["method"] for r in rows])
  ax.invert_yaxis()
  ax.set_xlabel(
    f"fraction of the oracle gap closed, pooled over {', '.join(focus)} ({a['ranker']} ranker)"
  )
  ax.set_title("AfriQA: gap closed per method")
  ax.grid(axis="x", color="0.92")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
  _save(fig, path)
