"""The gap study (NTREX-128) behind ``python study.py``: encoders x methods x query languages,
a definition on ``studies/runner.py``.

Resumable: each (encoder, method) student lives in ``<workdir>/runs/<encoder>/<method>``
(its training resumes from checkpoints), and each (encoder, method, language)
evaluation is a cell ``<workdir>/cells/<encoder>/<method>/<lang>.json``; finished
cells are never recomputed. Document representations are cached in
``<workdir>/cache``. Outputs (``evaluation/report.py``): ``results.csv``, ``report.md``,
``gap.png``.

Significance: per language, a paired t-test across queries of each method against zero-shot
and against the best KD baseline (the KD method with the highest mean over all languages), with
the Holm-Bonferroni correction applied over all tests of one encoder.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Dict, Sequence

import ml_collections

from optical_jax.evaluation import report, stats
from optical_jax.testsets import registry
from optical_jax.testsets.collection_format import collection_fingerprint
from optical_jax.testsets.registry import load_collection
from optical_jax.retrieval.collection_eval import evaluate_collection
from optical_jax.loading import load_encoder
from optical_jax.io import atomic_write_text, write_json_atomic
from optical_jax.config_checks import validate, validate_gap_study
from optical_jax.errors import UsageError
from optical_jax.studies import runner
from optical_jax.training import identity

log = logging.getLogger(__name__)


def _split(s: str):
  return [x.strip() for x in s.split(",") if x.strip()]


def slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/")).strip("_")[-80:]


def _collection_dir(config, work: Path, langs) -> Path:
  return registry.study_collection_dir(config.collection, work / "collection", langs)


def _run_config(config, enc: str, method: str):
  cfg = config.distill.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.model, cfg.method = enc, method
  return cfg


def _cell_dir(work: Path, enc: str, method: str) -> Path:
  return work / "cells" / slug(enc) / method


def _todo(work: Path, enc: str, method: str, langs) -> list:
  """The languages of (``enc``, ``method``) without a finished cell."""
  return [l for l in langs if not (_cell_dir(work, enc, method) / f"{l}.json").is_file()]


def check(config: ml_collections.ConfigDict) -> None:
  """What is compared and how (``config_checks.validate_gap_study``)."""
  validate_gap_study(config)


def plan(config: ml_collections.ConfigDict, work: Path) -> runner.Plan:
  """One run per (encoder, trained method), done when its student exists or all its cells do.
  Cells are reused by (encoder, method, language): only in a study of the same collection (the
  sha256 of its files), ranker and training settings (training/identity.py)."""
  low, high = _split(config.low), _split(config.high)
  both = sorted(set(low) & set(high))
  if both:
    raise UsageError(
      f"config.low and config.high both name {both}: a language is either low- or high-resource"
    )
  langs = low + high
  runs = []
  for enc in _split(config.encoders):  # every run's config, before anything loads or trains
    for method in _split(config.methods):
      if method != "zero_shot":
        cfg = _run_config(config, enc, method)
        validate(cfg)
        run_dir = work / "runs" / slug(enc) / method
        done = (run_dir / "student" / "config.json").is_file() or not _todo(
          work, enc, method, langs
        )
        runs.append(runner.Run(f"{enc} / {method}", run_dir, cfg, done))
  identity.check(work, config, operational=identity.STUDY_OPERATIONAL)
  if config.collection.builder == "dir":  # a collection edited in place is another study
    identity.check(work, data=collection_fingerprint(config.collection.source))
  return runner.Plan(runs, {"low": low, "high": high, "langs": langs})


def prepare(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> None:
  """Builds the collection (``ntrex``), records the study's identity and config, loads the
  collection."""
  work.mkdir(parents=True, exist_ok=True)
  collection_dir = _collection_dir(config, work, p.context["langs"])
  data = collection_fingerprint(collection_dir)
  identity.record(work, config, data=data, operational=identity.STUDY_OPERATIONAL)
  atomic_write_text(work / "config.json", config.to_json_best_effort(indent=2))
  p.context["collection"] = load_collection(collection_dir, langs=p.context["langs"])


def evaluate(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> None:
  """Every missing cell: the encoder's documents, queries from the zero-shot encoder or the
  trained student."""
  collection, low, langs = p.context["collection"], p.context["low"], p.context["langs"]
  for enc in _split(config.encoders):
    doc_model = load_encoder(enc, dtype=config.distill.dtype)
    for method in _split(config.methods):
      cell_dir = _cell_dir(work, enc, method)
      todo = _todo(work, enc, method, langs)
      if not todo:
        log.info("%s / %s: all %d languages done", enc, method, len(langs))
        continue
      if method == "zero_shot":
        query_model = doc_model
      else:
        run_dir = work / "runs" / slug(enc) / method
        query_model = load_encoder(str(run_dir), dtype=config.distill.dtype)
      t0 = time.time()
      results = evaluate_collection(
        query_model,
        doc_model,
        collection,
        todo,
        cell_dir / "runs",
        ranker=config.eval.ranker,
        k=config.eval.k,
        cache_dir=work / "cache",
        batch_size=config.eval.batch_size,
        doc_max_length=config.eval.doc_max_length,
        tag=f"{slug(enc)}.{method}",
      )
      for lang, res in results.items():
        cell = {
          "encoder": enc,
          "method": method,
          "lang": lang,
          "resource": "low" if lang in low else "high",
          "mean": res.mean,
          "per_query": res.per_query,
          "qids": sorted(collection.queries[lang]),
          "num_queries": len(collection.queries[lang]),
          "missing_queries": list(res.missing_queries),
          "unknown_docs": res.unknown_docs,
          "seconds": round(time.time() - t0, 1),
        }
        write_json_atomic(cell_dir / f"{lang}.json", cell)


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
    kd = [m for m in methods if m in runner.KD_METHODS]
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


def write_outputs(config: ml_collections.ConfigDict, work: Path, p: runner.Plan) -> dict:
  """``results.csv``, ``report.md`` and ``gap.png`` over every cell in the work dir."""
  collection, low, high = p.context["collection"], p.context["low"], p.context["high"]
  cells = report.load_cells(work / "cells")
  measures = list(cells[0]["mean"]) if cells else []
  report.write_gap_csv(cells, work / "results.csv", measures)
  analysis = analyse(cells, low, high, config.eval.metric, config.eval.bootstrap_samples)
  header = (
    f"# Gap study\n\nCollection: {collection.name} — "
    f"{collection.meta.get('description', '')}\n\nDistillation bitext: "
    f"{config.distill.data.source} ({config.distill.data.langs}), disjoint from the test "
    f"collection. Ranker: {config.eval.ranker}. Metric: {config.eval.metric} "
    "(trec_eval semantics, -c: a query missing from a run scores 0)."
  )
  report.write_gap_report(analysis, work / "report.md", config.eval.metric, header)
  report.plot_gap(analysis, work / "gap.png", config.eval.metric)
  log.info("wrote %s, %s, %s", work / "results.csv", work / "report.md", work / "gap.png")
  return {
    "cells": len(cells),
    "analysis": {e: {k: v for k, v in a.items() if k != "tests"} for e, a in analysis.items()},
  }


#: The gap study: ``runner.run(gap_grid.STUDY, config, workdir)``.
STUDY = runner.Study("gap", check, plan, prepare, evaluate, write_outputs)
