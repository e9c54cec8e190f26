"""The main job behind ``python train.py``, as its stages in order: check the config and the
work dir, load the bitext and the models, fine-tune the teacher (``config.teacher.triples``),
evaluate zero-shot, distil the student (``training/distill.py``), interpolate and export it
(``training/student.py``), run the retrieval checks (``dev_eval``), write the results.

Restore order on start: if ``<workdir>/checkpoints`` holds a readable checkpoint the run resumes
from it (``training/loop.py``); otherwise the student starts as a copy of the teacher (or its own
model with a fitted projection). The finished student is written to ``<workdir>/student`` (an HF
directory, loadable by ``optical_jax.encode --model <workdir>``).
"""

from __future__ import annotations

import functools
import logging
import resource
import time
from pathlib import Path

import jax
import ml_collections

from optical_jax import dev_eval
from optical_jax.config_checks import validate, validate_for_model
from optical_jax.data.sources import load_splits_with_manifest
from optical_jax.encode import encode_texts
from optical_jax.evaluation.matching import format_table, matching_by_language
from optical_jax.io import atomic_write_text, check_work_folder, work_lock, write_json_atomic
from optical_jax.loading import LoadedEncoder, load_encoder
from optical_jax.loading.load import folder_file_hashes
from optical_jax.loading.model_card import write_model_card
from optical_jax.losses.objectives import OBJECTIVES
from optical_jax.retrieval.index import fingerprint
from optical_jax.testsets import registry
from optical_jax.training import identity
from optical_jax.training.distill import distill
from optical_jax.training.student import (
  export_student,
  interpolated,
  model_options,
  text_prefix,
  trained_ranker,
)
from optical_jax.training.teacher import finetune_teacher

log = logging.getLogger(__name__)

METHODS = ("zero_shot",) + OBJECTIVES


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the configured job; writes ``results.json``, ``results.md`` and (when
  training) ``student/``, ``metrics.jsonl``, ``checkpoints/``. Returns the results.

  One run per work dir: process 0 holds ``io.work_lock`` on it (taken after the config's
  checks, before anything is read); a second run is refused with one line naming the holder.
  A SIGTERM or SIGINT while training saves and raises ``errors.Preempted``
  (``training/loop.py: fit``)."""
  validate(config)  # every field rule, before anything is read or written
  work = Path(workdir)
  check_work_folder(work)
  identity.check(work, config)  # before anything is read, written or deleted
  with work_lock(work, active=jax.process_index() == 0):
    return _train_and_evaluate(config, work)


def _train_and_evaluate(config: ml_collections.ConfigDict, work: Path) -> dict:
  """:func:`train_and_evaluate` holding the work dir's lock."""
  lead = jax.process_index() == 0  # only process 0 writes outputs (orbax coordinates checkpoints)
  start = time.time()
  checks = []
  if registry.dev_checks(config):  # the overlap guard also covers the retrieval checks' text
    checks = registry.guard_collections(config)
  models, embed = None, None
  if config.data.get("select", "random") == "question_like":  # the data need the teacher
    models = _load_models(config)
    embed = _encoder(models[0], config)
  splits, manifest = load_splits_with_manifest(config, checks, registry.guard_collection, embed)
  data = {k: manifest[k] for k in ("train_sha256", "test_sha256")}
  identity.check(work, data=data)  # before any other model loads
  teacher, student_base, model_hash = models or _load_models(config)
  # HF folders given by path: their files' sha256 (hashed once per size and mtime)
  files = folder_file_hashes([config.model, config.teacher.get("model", "")])
  if lead:  # the run is known to be this dir's: only now is anything written
    work.mkdir(parents=True, exist_ok=True)
    identity.record(work, config, data, model_hash, files=files)
    atomic_write_text(work / "config.json", config.to_json_best_effort(indent=2))
    write_json_atomic(work / "bitext_manifest.json", manifest)
  if config.teacher.triples:
    teacher = finetune_teacher(config, teacher, work)
    if not config.teacher.get("model", ""):
      student_base = teacher
  log.info(
    "loaded %s (%s, %d layers, d=%d) in %.1fs",
    teacher.source,
    teacher.config.family,
    teacher.config.num_layers,
    teacher.config.hidden_size,
    time.time() - start,
  )
  rows = {"zero_shot": _matching(teacher, teacher, splits, config)}
  if student_base is not teacher:  # the student's own model on both sides, for reference
    rows["student_zero_shot"] = _matching(student_base, student_base, splits, config)
  training, student = None, teacher
  if config.method != "zero_shot":
    summary = distill(
      config, teacher, splits, work, student=None if student_base is teacher else student_base
    )
    model, init = summary.pop("model"), summary.pop("init")
    # interpolated from the student's start (the teacher's copy, or its own weights + the
    # fitted projection) towards the trained weights
    trained = summary["params"]
    alpha = config.train.interpolation
    student = interpolated(model, init["encoder"], trained["encoder"], alpha, trained.get("head"))
    rows[config.method] = _matching(student, teacher, splits, config)
    if lead:  # with a cross-model student's start: where later interpolations start from
      start_params = None if model is teacher else init["encoder"]
      export_student(
        work,
        student,
        teacher,
        config.method,
        dev_eval.PROJECTION_START,
        start_params,
        ranker=trained_ranker(config),
      )
    training = {k: v for k, v in summary.items() if k != "params"}
  retrieval = None
  if registry.dev_checks(config):
    retrieval = dev_eval.evaluate_dev(
      student, teacher, config, work, interpolation=config.train.interpolation
    )
  results = {
    "task": "bitext matching accuracy on the held-out test split (foreign side by the "
    "student, English side by the teacher)",
    "model": config.model,
    "method": config.method,
    "results": rows,
    "splits": {lang: s["info"] for lang, s in splits.items()},
    "training": training,
    "retrieval": retrieval,
    "seconds": round(time.time() - start, 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
  }
  if lead:
    write_json_atomic(work / "results.json", results)
    md = format_table(rows) + "\n"
    if retrieval:
      md += dev_eval.format_markdown(retrieval)
    atomic_write_text(work / "results.md", md)
    write_model_card(work)  # the exported student's README.md, with its data and these figures
  return results


def _load_models(config):
  """``(teacher, student's base model, fingerprint)``: the student's base is the teacher itself
  (the self-teacher: the student starts as its copy) unless ``config.teacher.model`` names the
  teacher, when it is ``config.model``."""
  teacher = load_encoder(config.teacher.get("model", "") or config.model, **model_options(config))
  student_base = teacher
  model_hash = fingerprint(teacher)
  if config.teacher.get("model", ""):  # a teacher of another model: the student is config.model
    student_base = load_encoder(config.model, **model_options(config))
    model_hash = f"{model_hash}+{fingerprint(student_base)}"
  validate_for_model(config, student_base.config.num_layers)
  return teacher, student_base, model_hash


def _matching(query_model: LoadedEncoder, doc_model: LoadedEncoder, splits, config) -> dict:
  """Bitext-matching accuracy per language on the test pairs: foreign side encoded by
  ``query_model`` (the student), English by ``doc_model`` (the teacher)."""
  return matching_by_language(_encoder(query_model, config), _encoder(doc_model, config), splits)


def _encoder(model: LoadedEncoder, config):
  """texts -> [n, d] unit vectors by ``model``, with the run's prefix, pooling and batch size."""
  return functools.partial(
    encode_texts,
    model,
    prefix=text_prefix(model, config),
    normalize=True,
    progress=False,
    pooling=config.eval.pooling or None,
    batch_size=config.eval.batch_size,
  )
