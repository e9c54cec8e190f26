"""The AfriQA study behind ``python study.py --config configs/afriqa_study.py``: teachers x
methods x seeds, each a ``train.py`` run (``configs/afriqa.py``, the study's ``config.distill``)
that ends with the retrieval checks of ``dev_eval.py``, then one report over them; a definition
on ``studies/runner.py``.

Resumable: run ``(method, seed)`` lives in ``<workdir>/runs/<method>/seed<k>`` and is skipped
when its ``results.json`` exists (an unfinished run resumes from its checkpoints).

One report per ranker of ``config.rankers`` (``evaluation/report.py``: ``report.md``,
``results.csv``, ``gap.png`` ... for dense; ``report.<ranker>.md`` ... for another, computed on the
finished runs, without training again, where a run did not check that ranker):

* **AfriQA** (question -> passage): per method and language, MAP of the native questions
  averaged over seeds, and the fraction of the oracle gap closed (``evaluation/oracle_gap.py``):
  its mean and spread over seeds, and the 95% bootstrap interval over questions of the
  seed-averaged scores. Paired t-tests over all the questions of the languages pooled, on the
  seed-averaged per-question scores, against zero-shot and against the best KD baseline.
* **FLORES-200 devtest** (sentence retrieval, a known-item test): per language MAP averaged over
  seeds, the high- and low-resource means, the gap, and each language's change from zero-shot.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, List

import ml_collections
import numpy as np

from optical_jax import dev_eval, experiment
from optical_jax.evaluation import oracle_gap, report
from optical_jax.errors import UsageError
from optical_jax.io import atomic_write_text
from optical_jax.config_checks import validate
from optical_jax.studies import runner
from optical_jax.testsets import registry
from optical_jax.training import identity

log = logging.getLogger(__name__)


def _numbers(kind, field: str, text: str, parts: List[str]) -> list:
  """``parts`` as ``kind`` (int or float), or a one-line error naming the config field."""
  try:
    return [kind(x) for x in parts]
  except ValueError:
    raise UsageError(f"{field}={text!r}: expected comma-separated {kind.__name__}s") from None


def _alphas(config) -> List[float]:
  text = config.get("interpolations", "")
  return _numbers(float, "config.interpolations", text, dev_eval.split_list(text))


def rankers(config) -> List[str]:
  """The rankers the study reports (``config.rankers``; a config of before 2026-12-07 named
  one, ``config.ranker``)."""
  text = config.get("rankers", config.get("ranker", "dense"))
  names = dev_eval.split_list(text)
  bad = [n for n in names if n not in ("dense", "maxsim")]
  if bad or not names:
    raise UsageError(f"config.rankers={text!r}: expected dense and/or maxsim, comma-separated")
  return names


def _with_ranker(config, ranker: str):
  """``config`` reporting ``ranker`` alone (``config.ranker``, what :func:`analyse` reads)."""
  out = ml_collections.ConfigDict(config.to_dict())
  with out.unlocked():
    out.ranker = ranker
  return out


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
  relative to the work dir ('' for config.distill's own teacher)}``; '' = config.distill's
  teacher only. ``self`` names the student's own model as teacher."""
  own = config.distill.teacher.get("model", "")
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


def check(config: ml_collections.ConfigDict) -> None:
  """The study's own settings, before the work dir is looked at."""
  if config.bootstrap_samples < 1:  # the intervals are bootstrap percentiles
    raise UsageError(f"config: bootstrap_samples={config.bootstrap_samples}: must be >= 1")
  _alphas(config)  # every setting is checked before anything is written or trained
  rankers(config)
  if registry.evals(config.distill).get("afriqa", {}).get("type") != "afriqa":
    raise UsageError(
      "config.distill.evals: no check named 'afriqa' of type 'afriqa'; the study reports it "
      f"(declared: {registry.dev_checks(config.distill)}; configs/afriqa_study.py:afriqa,...)"
    )


def _plan_runs(config, work: Path) -> List[runner.Run]:
  """The runs of one teacher's study, each config validated and each run dir's identity checked
  (nothing trains, nothing is written); a run is done when its ``results.json`` exists."""
  runs = []
  for method, dirs in run_dirs(config, work).items():
    for run_dir in dirs:
      cfg = config.distill.copy_and_resolve_references()
      with cfg.unlocked():
        cfg.method = method
        cfg.seed = int(run_dir.name[len("seed") :])
        cfg.train.interpolation = 1.0  # runs keep the trained student; config.interpolations
      validate(cfg)  # every run's config, before the first one trains
      identity.check(run_dir, cfg)  # nor is a run of other settings reused or resumed
      label = f"{method}, seed {cfg.seed}"
      runs.append(runner.Run(label, run_dir, cfg, (run_dir / "results.json").is_file()))
  return runs


def plan(config: ml_collections.ConfigDict, work: Path) -> runner.Plan:
  """Every teacher's runs (:func:`teachers`; each teacher's study is ``config`` with that teacher,
  in its own folder), before anything is written or the first run trains."""
  subs = {}
  for model, folder in teachers(config).items():
    sub = config.copy_and_resolve_references()
    with sub.unlocked():
      sub.teachers = ""
      sub.distill.teacher.model = model
    subs[model] = (sub, work / folder if folder else work)
  planned = {model: _plan_runs(sub, sub_work) for model, (sub, sub_work) in subs.items()}
  runs = [r for model in planned for r in planned[model]]
  return runner.Plan(runs, {"subs": subs})


def _one_teacher(config) -> bool:
  """Whether the study has one teacher, config.distill's own (then it is written as is)."""
  plan_ = teachers(config)
  return len(plan_) == 1 and next(iter(plan_.values())) == ""


def prepare(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> None:
  """The study's ``config.json`` (and each other teacher's in its folder)."""
  work.mkdir(parents=True, exist_ok=True)
  atomic_write_text(work / "config.json", config.to_json_best_effort(indent=2))
  if _one_teacher(config):
    return
  for sub, sub_work in p.context["subs"].values():
    sub_work.mkdir(parents=True, exist_ok=True)
    if sub_work != work:
      atomic_write_text(sub_work / "config.json", sub.to_json_best_effort(indent=2))


def evaluate(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> None:
  """Per teacher and ranker (:func:`rankers`): the finished runs checked with the ranker where
  they were not, and the trained students interpolated towards the teacher
  (``config.interpolations``)."""
  for model, (sub, sub_work) in p.context["subs"].items():
    if not _one_teacher(config):
      log.info("study: teacher %s -> %s", model or "(the student's own model)", sub_work)
    for ranker in rankers(config):
      _evaluate_one(_with_ranker(sub, ranker), sub_work)


def _evaluate_one(config, work: Path) -> None:
  """:func:`evaluate` of one teacher's study in ``work``."""
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


def write_outputs(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> dict:
  """Each teacher's report per ranker (``evaluation/report.py``); returns the first ranker's
  analysis (with the others under ``"by_ranker"``), or with several teachers ``{"teachers":
  {model: analysis}}`` and ``teachers.md`` (the first ranker) beside the reports."""
  analyses = {}
  names = rankers(config)
  for model, (sub, sub_work) in p.context["subs"].items():
    by_ranker = {}
    for ranker in names:
      by_ranker[ranker] = analyse(_with_ranker(sub, ranker), sub_work)
      report.write_afriqa_report(by_ranker[ranker], dev_eval.split_list(sub.focus_langs), sub_work)
    analyses[model] = (
      dict(by_ranker[names[0]], by_ranker=by_ranker) if len(names) > 1 else by_ranker[names[0]]
    )
  if _one_teacher(config):
    return next(iter(analyses.values()))
  focus = dev_eval.split_list(config.focus_langs)
  table = report.afriqa_teachers_table(analyses, focus, config.distill.model)
  atomic_write_text(work / "teachers.md", table)
  return {"teachers": analyses}


def _afriqa_check(run_dir: Path, ranker: str):
  """A finished run's config with its retrieval checks cut to AfriQA with ``ranker``."""
  cfg = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
  cfg = registry.select(cfg, ("afriqa",))
  cfg.retrieval.rankers = ranker
  return cfg


def _load(run_dir: Path, key: str) -> dict:
  path = run_dir / "retrieval" / f"{key}.json"
  if not path.is_file():
    raise FileNotFoundError(
      f"{path}: missing; the run has no {key} retrieval check (config.distill.evals)"
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
      "closed_std": report.sample_std(per_seed),
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
    if base in runner.KD_METHODS and (
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


#: The AfriQA study: ``runner.run(afriqa_grid.STUDY, config, workdir)``.
STUDY = runner.Study("afriqa", check, plan, prepare, evaluate, write_outputs)
