"""The gap study behind ``python study.py``: encoders x methods x languages.

Resumable: each (encoder, method) student lives in ``<workdir>/runs/<encoder>/<method>``
(its training resumes from checkpoints), and each (encoder, method, language)
evaluation is a cell ``<workdir>/cells/<encoder>/<method>/<lang>.json``; finished
cells are never recomputed. Document representations are cached in
``<workdir>/cache``. Outputs: ``results.csv``, ``report.md``, ``gap.png``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import ml_collections

from optical_jax import experiment
from optical_jax.evaluation import report
from optical_jax.data.collection_format import collection_fingerprint, load_collection
from optical_jax.retrieval.collection_eval import evaluate_collection
from optical_jax.loading import load_encoder
from optical_jax.io import atomic_write_text, check_work_folder, work_lock, write_json_atomic
from optical_jax.config_checks import validate, validate_gap_study
from optical_jax.errors import UsageError
from optical_jax.training import identity

log = logging.getLogger(__name__)


def _split(s: str):
  return [x.strip() for x in s.split(",") if x.strip()]


def slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/")).strip("_")[-80:]


def _collection_dir(config, work: Path, langs) -> Path:
  c = config.collection
  if c.builder == "dir":
    return Path(c.source)
  if c.builder != "ntrex":
    raise ValueError(f"config.collection.builder={c.builder!r}; expected 'ntrex' or 'dir'")
  out = work / "collection"
  if not (out / "qrels.txt").is_file():
    from optical_jax.data.collections import build_ntrex  # pylint: disable=import-outside-toplevel

    if not Path(c.source).is_dir():
      raise FileNotFoundError(f"NTREX-128 not found at {c.source} (config.collection.source)")
    build_ntrex(c.source, out, langs, with_title=c.with_title)
  return out


def _run_config(config, enc: str, method: str):
  cfg = config.distill.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.model, cfg.method = enc, method
  return cfg


def run_study(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs every missing cell, then writes results.csv, report.md and gap.png. One study per work
  dir (``io.work_lock``, taken before anything is read)."""
  work = Path(workdir)
  validate_gap_study(config)  # what is compared and how, before anything is read or written
  check_work_folder(work)
  with work_lock(work):
    return _run_study(config, work)


def _run_study(config: ml_collections.ConfigDict, work: Path) -> dict:
  """:func:`run_study` holding the work dir's lock."""
  # Cells are reused by (encoder, method, language): only in a study of the same collection
  # (the sha256 of its files), ranker and training settings (training/identity.py).
  low, high = _split(config.low), _split(config.high)
  both = sorted(set(low) & set(high))
  if both:
    raise UsageError(
      f"config.low and config.high both name {both}: a language is either low- or high-resource"
    )
  langs = low + high
  for enc in _split(config.encoders):  # every run's config, before anything loads or trains
    for method in _split(config.methods):
      if method != "zero_shot":
        validate(_run_config(config, enc, method))
  identity.check(work, config, operational=identity.STUDY_OPERATIONAL)
  if config.collection.builder == "dir":  # a collection edited in place is another study
    identity.check(work, data=collection_fingerprint(config.collection.source))
  work.mkdir(parents=True, exist_ok=True)
  collection_dir = _collection_dir(config, work, langs)
  data = collection_fingerprint(collection_dir)
  identity.record(work, config, data=data, operational=identity.STUDY_OPERATIONAL)
  atomic_write_text(work / "config.json", config.to_json_best_effort(indent=2))
  collection = load_collection(collection_dir, langs=langs)
  measures = None
  for enc in _split(config.encoders):
    doc_model = load_encoder(enc, dtype=config.distill.dtype)
    for method in _split(config.methods):
      cell_dir = work / "cells" / slug(enc) / method
      todo = [l for l in langs if not (cell_dir / f"{l}.json").is_file()]
      if not todo:
        log.info("%s / %s: all %d languages done", enc, method, len(langs))
        continue
      if method == "zero_shot":
        query_model = doc_model
      else:
        run_dir = work / "runs" / slug(enc) / method
        cfg = _run_config(config, enc, method)
        if not (run_dir / "student" / "config.json").is_file():
          log.info("%s / %s: distilling into %s", enc, method, run_dir)
          experiment.train_and_evaluate(cfg, str(run_dir))
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
  cells = report.load_cells(work / "cells")
  measures = list(cells[0]["mean"]) if cells else []
  report.write_csv(cells, work / "results.csv", measures)
  analysis = report.analyse(cells, low, high, config.eval.metric, config.eval.bootstrap_samples)
  header = (
    f"# Gap study\n\nCollection: {collection.name} — "
    f"{collection.meta.get('description', '')}\n\nDistillation bitext: "
    f"{config.distill.data.source} ({config.distill.data.langs}), disjoint from the test "
    f"collection. Ranker: {config.eval.ranker}. Metric: {config.eval.metric} "
    "(trec_eval semantics, -c: a query missing from a run scores 0)."
  )
  report.write_report(analysis, work / "report.md", config.eval.metric, header)
  report.plot(analysis, work / "gap.png", config.eval.metric)
  log.info("wrote %s, %s, %s", work / "results.csv", work / "report.md", work / "gap.png")
  return {
    "cells": len(cells),
    "analysis": {e: {k: v for k, v in a.items() if k != "tests"} for e, a in analysis.items()},
  }
