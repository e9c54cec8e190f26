"""The AfriQA study behind ``python study.py --config configs/afriqa_study.py``: methods x seeds,
each a ``train.py`` run (``configs/afriqa.py``) that ends with the retrieval checks of
``dev_eval.py``, then one report over them.

Resumable: run ``(method, seed)`` lives in ``<workdir>/runs/<method>/seed<k>`` and is skipped
when its ``results.json`` exists (an unfinished run resumes from its checkpoints).

The report (``report.md``, ``results.csv``, ``gap.png``; for ``config.ranker`` other than dense
``report.<ranker>.md`` ..., computed on the finished runs without training again):

* **AfriQA** (question -> passage): per method and language, MAP of the native questions
  averaged over seeds, and the fraction of the oracle gap closed (``evaluation/oracle_gap.py``):
  its mean and spread over seeds, and the 95% bootstrap interval over questions of the
  seed-averaged scores. Paired t-tests over all the questions of the languages pooled, on the
  seed-averaged per-question scores, against zero-shot and against the best KD baseline.
* **FLORES-200 devtest** (sentence retrieval, a known-item test): per language MAP averaged over
  seeds, the high- and low-resource means, the gap, and each language's change from zero-shot.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Dict, List

import ml_collections
import numpy as np

from optical_jax import dev_eval, experiment
from optical_jax.evaluation import oracle_gap
from optical_jax.errors import UsageError
from optical_jax.io import atomic_write_text, check_work_folder, work_lock
from optical_jax.config_checks import validate
from optical_jax.training import identity

log = logging.getLogger(__name__)

KD_METHODS = ("kd_sentence", "kd_token")


def _numbers(kind, field: str, text: str, parts: List[str]) -> list:
  """``parts`` as ``kind`` (int or float), or a one-line error naming the config field."""
  try:
    return [kind(x) for x in parts]
  except ValueError:
    raise UsageError(f"{field}={text!r}: expected comma-separated {kind.__name__}s") from None


def _alphas(config) -> List[float]:
  text = config.get("interpolations", "")
  return _numbers(float, "config.interpolations", text, dev_eval.split_list(text))


def run_dirs(config, work: Path) -> Dict[str, List[Path]]:
  """method -> its run folders (one per seed; zero-shot has one). A method may name its own seeds,
  ``kd_token:0`` or ``optical:0+1+2``; otherwise it takes ``config.seeds``."""
  out = {}
  for entry in dev_eval.split_list(config.methods):
    method, _, own = entry.partition(":")
    if method not in experiment.METHODS:
      raise UsageError(f"config.methods: {method!r} is not one of {experiment.METHODS}")
    if method == "zero_shot":
      seeds = [0]
    elif own:
      seeds = _numbers(int, f"config.methods ({entry})", own, own.split("+"))
    else:
      seeds = _numbers(int, "config.seeds", config.seeds, dev_eval.split_list(config.seeds))
    out[method] = [work / "runs" / method / f"seed{s}" for s in seeds]
  return out


def teachers(config) -> Dict[str, str]:
  """``config.teachers`` -> ``{teacher model ('' = the student's own model): its study folder,
  relative to the work dir ('' for config.train's own teacher)}``; '' = config.train's teacher
  only. ``self`` names the student's own model as teacher."""
  own = config.train.teacher.get("model", "")
  names = dev_eval.split_list(config.get("teachers", "")) or [own or "self"]
  out = {}
  for name in names:
    model = "" if name == "self" else name
    out[model] = (
      ""
      if model == own
      else "teacher-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model or "self").strip("-")
    )
  return out


def run_afriqa_study(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains what is missing, then writes the report. Returns the analysis; with several
  ``config.teachers``, ``{"teachers": {model: analysis}}`` and a ``teachers.md`` beside the
  reports of each (the first teacher's in the work dir, each other's in its own folder). One
  study per work dir (``io.work_lock``, taken before anything is read)."""
  work = Path(workdir)
  if config.bootstrap_samples < 1:  # the intervals are bootstrap percentiles
    raise UsageError(f"config: bootstrap_samples={config.bootstrap_samples}: must be >= 1")
  _alphas(config)  # every setting is checked before anything is written or trained
  check_work_folder(work)
  with work_lock(work):
    return _run_afriqa_study(config, work)


def _run_afriqa_study(config: ml_collections.ConfigDict, work: Path) -> dict:
  """:func:`run_afriqa_study` holding the work dir's lock."""
  plan = teachers(config)
  subs = {}
  for model, folder in plan.items():
    sub = config.copy_and_resolve_references()
    with sub.unlocked():
      sub.teachers = ""
      sub.train.teacher.model = model
    subs[model] = (sub, work / folder if folder else work)
  # every run's config and identity, before anything is written or the first run trains
  planned = {model: _plan_runs(sub, sub_work) for model, (sub, sub_work) in subs.items()}
  work.mkdir(parents=True, exist_ok=True)
  atomic_write_text(work / "config.json", config.to_json_best_effort(indent=2))
  if len(plan) == 1 and next(iter(plan.values())) == "":
    return _run_one(config, work, planned[""])
  analyses = {}
  for model, (sub, sub_work) in subs.items():
    log.info("study: teacher %s -> %s", model or "(the student's own model)", sub_work)
    sub_work.mkdir(parents=True, exist_ok=True)
    if sub_work != work:
      atomic_write_text(sub_work / "config.json", sub.to_json_best_effort(indent=2))
    analyses[model] = _run_one(sub, sub_work, planned[model])
  atomic_write_text(work / "teachers.md", teachers_table(analyses, config))
  return {"teachers": analyses}


def teachers_table(analyses: Dict[str, dict], config) -> str:
  """Markdown: per teacher, its oracle (English questions, its own documents) and zero-shot
  native MAP over the focus languages, and each method's MAP and fraction of that teacher's
  gap closed (focus languages pooled, 95% interval)."""
  focus = dev_eval.split_list(config.focus_langs)
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
        f"| {model or 'self (' + config.train.model + ')'} | {oracle:.3f} | {m} | "
        f"{r['seeds']} | {native:.3f} | {sub['closed_pooled']:+.3f} "
        f"{_ci(sub['closed_pooled_ci'])} |"
      )
  return "\n".join(lines) + "\n"


def _plan_runs(config, work: Path):
  """``[(method, run dir, train.py config)]`` of a study, each config validated and each run
  dir's identity checked (nothing trains, nothing is written)."""
  runs = []
  for method, dirs in run_dirs(config, work).items():
    for run_dir in dirs:
      cfg = config.train.copy_and_resolve_references()
      with cfg.unlocked():
        cfg.method = method
        cfg.seed = int(run_dir.name[len("seed") :])
        cfg.train.interpolation = 1.0  # runs keep the trained student; config.interpolations
      validate(cfg)  # every run's config, before the first one trains
      identity.check(run_dir, cfg)  # nor is a run of other settings reused or resumed
      runs.append((method, run_dir, cfg))
  return runs


def _run_one(config, work: Path, runs) -> dict:
  """One teacher's study in ``work`` (``runs``: its :func:`_plan_runs`): trains what is
  missing, then writes its report."""
  for method, run_dir, cfg in runs:
    if (run_dir / "results.json").is_file():
      log.info("%s: done", run_dir)
      continue
    log.info("study: %s, seed %d -> %s", method, cfg.seed, run_dir)
    experiment.train_and_evaluate(cfg, str(run_dir))
  key = f"afriqa.{config.ranker}.json"
  for method, dirs in run_dirs(config, work).items():
    for run_dir in dirs:  # a finished run without the report's ranker (--config.ranker=maxsim)
      if not (run_dir / "retrieval" / key).is_file():
        log.info("study: %s checked with the %s ranker", run_dir, config.ranker)
        dev_eval.reevaluate(run_dir, _afriqa_check(run_dir, config.ranker))
  for alpha in _alphas(config):  # the trained students, interpolated towards the teacher
    for method, dirs in run_dirs(config, work).items():
      for run_dir in dirs if method != "zero_shot" else []:
        out = dev_eval.interpolation_dir(run_dir, alpha)
        if not (out / "retrieval" / key).is_file():
          log.info("study: %s interpolated with alpha %g", run_dir, alpha)
          dev_eval.reevaluate(run_dir, _afriqa_check(run_dir, config.ranker), alpha)
  analysis = analyse(config, work)
  write_report(analysis, config, work)
  return analysis


def _afriqa_check(run_dir: Path, ranker: str):
  """A finished run's config with its retrieval checks cut to AfriQA with ``ranker``."""
  cfg = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
  with cfg.unlocked(), cfg.ignore_type():  # a tuple now; a string in runs recorded before
    cfg.retrieval.collections = ("afriqa",)
    cfg.retrieval.rankers = ranker
  return cfg


def report_paths(work: Path, ranker: str) -> Dict[str, Path]:
  """Where the report of ``ranker`` goes: ``report.md``, ``results.csv``, ``gap.png`` for the
  dense ranker, ``report.<ranker>.md`` ... for another (so both reports can sit side by side)."""
  tag = "" if ranker == "dense" else f".{ranker}"
  return {
    "report": work / f"report{tag}.md",
    "csv": work / f"results{tag}.csv",
    "plot": work / f"gap{tag}.png",
  }


def _load(run_dir: Path, key: str) -> dict:
  path = run_dir / "retrieval" / f"{key}.json"
  if not path.is_file():
    raise FileNotFoundError(
      f"{path}: missing; the run has no {key} retrieval check (config.train.retrieval.collections)"
    )
  return json.loads(path.read_text(encoding="utf-8"))


def _seed_mean(per_seed: List[Dict[str, Dict[str, float]]], qids) -> Dict[str, Dict[str, float]]:
  return {
    l: {q: float(np.mean([s[l].get(q, 0.0) for s in per_seed])) for q in qids[l]} for l in qids
  }


def analyse(config, work: Path) -> dict:
  """Everything the report shows, from the runs' retrieval JSON files."""
  ranker = config.ranker
  dirs = run_dirs(config, work)
  first = _load(next(iter(dirs.values()))[0], f"afriqa.{ranker}")
  langs = list(first["closed"]["langs"])
  from optical_jax.data.afriqa import ENGLISH_SUFFIX  # pylint: disable=import-outside-toplevel

  zs_pq = first["per_query"]["zero_shot"]
  qids = {l: sorted(zs_pq[l]) for l in langs}
  zs = {l: zs_pq[l] for l in langs}
  english = oracle_gap.english_by_native(zs_pq["en"], qids, ENGLISH_SUFFIX)
  methods, per_query, flores = {}, {}, {}
  for alpha in _alphas(config):  # "optical@0.5": the interpolated students of a method
    dirs.update(
      {
        f"{m}@{alpha:g}": [dev_eval.interpolation_dir(d, alpha) for d in runs]
        for m, runs in list(dirs.items())
        if m != "zero_shot" and "@" not in m
      }
    )
  for method, run_list in dirs.items():
    runs = [_load(d, f"afriqa.{ranker}") for d in run_list]
    seeds = [{l: r["per_query"]["student"][l] for l in langs} for r in runs]
    per_query[method] = _seed_mean(seeds, qids)
    pooled = oracle_gap.closed_fraction(
      per_query[method], zs, english, qids, samples=config.bootstrap_samples
    )
    focus = [l for l in dev_eval.split_list(config.focus_langs) if l in langs]
    in_focus = oracle_gap.closed_fraction(
      {l: per_query[method][l] for l in focus},
      {l: zs[l] for l in focus},
      {l: english[l] for l in focus},
      {l: qids[l] for l in focus},
      samples=config.bootstrap_samples,
    )
    per_seed = [r["closed"]["closed_pooled"] for r in runs]
    per_seed_lang = {l: [r["closed"]["langs"][l]["closed"] for r in runs] for l in langs}
    eng = {l: float(np.mean([r["english_student"][l] for r in runs])) for l in langs}
    methods[method] = {
      "seeds": len(runs),
      "closed": pooled,
      "closed_per_seed": per_seed,
      "closed_focus": in_focus,
      "closed_mean": float(np.mean(per_seed)),
      "closed_std": _std(per_seed),
      "closed_per_seed_lang": per_seed_lang,
      "english_student": eng,
    }
    with_flores = [
      d for d in run_list if (d / "retrieval" / f"flores_devtest.{ranker}.json").is_file()
    ]
    if with_flores:  # the seeds that ran the FLORES check (their number is reported)
      fl = [_load(d, f"flores_devtest.{ranker}") for d in with_flores]
      flores[method] = {
        l: {
          "student": float(np.mean([f["langs"][l]["student"] for f in fl])),
          "zero_shot": fl[0]["langs"][l]["zero_shot"],
          "resource": fl[0]["langs"][l]["resource"],
          "min_delta": float(min(f["langs"][l]["delta"] for f in fl)),
          "seeds": len(fl),
        }
        for l in fl[0]["langs"]
      }
  # the best KD baseline of each variant (trained, or interpolated by the same weight)
  best = {}
  for m in methods:
    base, _, variant = m.partition("@")
    if base in KD_METHODS and (
      variant not in best
      or methods[m]["closed"]["closed_pooled"] > methods[best[variant]]["closed"]["closed_pooled"]
    ):
      best[variant] = m
  for m in methods:
    if m != "zero_shot":
      methods[m]["vs_zero_shot"] = oracle_gap.paired_tests(
        per_query[m], per_query.get("zero_shot", zs), qids
      )
    kd_ref = best.get(m.partition("@")[2])
    if kd_ref and m not in (kd_ref, "zero_shot"):
      methods[m]["vs_best_kd"] = oracle_gap.paired_tests(per_query[m], per_query[kd_ref], qids)
      methods[m]["best_kd"] = kd_ref
  best_kd = best.get("")
  return {
    "langs": langs,
    "methods": methods,
    "best_kd": best_kd,
    "flores": flores,
    "ranker": ranker,
    "english_zero_shot": {l: float(np.mean(list(english[l].values()))) for l in langs},
    "description": first.get("description", ""),
    "license": first.get("license", ""),
  }


def _std(values) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ci(x) -> str:
  return f"[{x[0]:+.3f}, {x[1]:+.3f}]"


def write_report(a: dict, config, work: Path) -> None:
  """``report.md``, ``results.csv`` and ``gap.png`` from :func:`analyse`."""
  langs, methods = a["langs"], a["methods"]
  focus = [l for l in dev_eval.split_list(config.focus_langs) if l in langs]
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
      f"{np.mean(sub['per_seed']):+.3f} ± {_std(sub['per_seed']):.3f} | "
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
  paths = report_paths(work, a["ranker"])
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
  _plot(a, paths["plot"])


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


def _plot(a: dict, path: Path) -> None:
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
