"""The main job behind ``python train.py``: distil a student on bitext, then
evaluate zero-shot against distilled.

Restore order on start: if ``<workdir>/checkpoints`` holds a readable
checkpoint the run resumes from it (data position included: batch ``k`` is a
pure function of the seed and ``k``); otherwise the student starts as a copy of
the teacher. The finished student is written to ``<workdir>/student`` (an HF
directory, loadable by ``optical_jax.encode --model <workdir>``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import resource
import signal
import time
from pathlib import Path
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from optical_jax import dev_eval
from optical_jax.data.pipeline import BitextBatcher
from optical_jax.data.sources import load_splits_with_manifest
from optical_jax.data.triples import TripleBatcher, read_triples
from optical_jax.encode import encode_texts
from optical_jax.config_checks import validate, validate_for_model
from optical_jax.evaluation.matching import matching_accuracy
from optical_jax.io import (
  atomic_write_text,
  check_work_folder,
  save_npy_atomic,
  work_lock,
  write_json_atomic,
)
from optical_jax.loading import LoadedEncoder, load_encoder
from optical_jax.loading.load import folder_file_hashes
from optical_jax.loading.export import save_hf_directory
from optical_jax.loading.model_card import write_model_card
from optical_jax.retrieval.index import fingerprint
from optical_jax.errors import Preempted
from optical_jax.training import identity, preemption, sharding
from optical_jax.training.checkpoints import Checkpointer, abstract_like
from optical_jax.training.jitted_step import sharded_step
from optical_jax.training.metric_log import MetricWriter, Progress, check_finite
from optical_jax.training.state import TrainState, interpolate, make_optimizer
from optical_jax.models.encoder import Encoder
from optical_jax.models.scoring import init_head
from optical_jax.testsets import registry
from optical_jax.training.steps import (
  OBJECTIVES,
  DistillSpec,
  TeacherSpec,
  make_loss,
  teacher_contrastive_loss,
)

log = logging.getLogger(__name__)

#: Fault injection for the resume tests: SIGKILL this process right after step N
#: has been dispatched and its checkpoint (if any) requested.
KILL_ENV = "OPTICAL_JAX_KILL_AT_STEP"

METHODS = ("zero_shot",) + OBJECTIVES


def _model_options(config) -> dict:
  """``load_encoder`` keyword arguments from the config's numerics fields."""
  return dict(
    dtype=config.dtype,
    remat=config.remat,
    layer_unroll=config.layer_unroll,
    attention=config.get("attention", "auto"),
  )


def _prefix(model: LoadedEncoder, config) -> str:
  return model.query_prefix if config.eval.prefix == "auto" else config.eval.prefix


def evaluate_matching(
  query_model: LoadedEncoder, doc_model: LoadedEncoder, splits: Dict[str, dict], config
) -> Dict[str, dict]:
  """Bitext-matching accuracy per language on the test pairs: foreign side
  encoded by ``query_model`` (the student), English by ``doc_model`` (the teacher)."""
  results = {}
  kw = dict(
    pooling=config.eval.pooling or None,
    batch_size=config.eval.batch_size,
    normalize=True,
    progress=False,
  )
  for lang, split in splits.items():
    en = [e for e, _ in split["test"]]
    fo = [f for _, f in split["test"]]
    acc = matching_accuracy(
      encode_texts(query_model, fo, prefix=_prefix(query_model, config), **kw),
      encode_texts(doc_model, en, prefix=_prefix(doc_model, config), **kw),
    )
    results[lang] = acc
    log.info("%s: f2e %.3f  e2f %.3f  (n=%d)", lang, acc["f2e"], acc["e2f"], acc["n"])
  return results


def format_table(rows: Dict[str, Dict[str, dict]]) -> str:
  """Markdown: one row per language, foreign->English / English->foreign accuracy per method."""
  methods = list(rows)
  langs = list(next(iter(rows.values())))
  head = "| lang | n | " + " | ".join(f"{m} f2e | {m} e2f" for m in methods) + " |"
  lines = [head, "|" + "---|" * (2 + 2 * len(methods))]
  for lang in langs:
    cells = [f"{rows[m][lang]['f2e']:.3f} | {rows[m][lang]['e2f']:.3f}" for m in methods]
    lines.append(f"| {lang} | {rows[methods[0]][lang]['n']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _to_global(batch: Dict[str, np.ndarray], shard) -> Dict[str, jax.Array]:
  """Host batch -> global arrays. Every process builds the same global batch
  (it is a pure function of the step) and contributes its own rows."""
  if jax.process_count() == 1:
    return jax.device_put(batch, shard)
  n, i = jax.process_count(), jax.process_index()
  out = {}
  for k, v in batch.items():
    rows = v.shape[0] // n
    out[k] = jax.make_array_from_process_local_data(shard, v[i * rows : (i + 1) * rows], v.shape)
  return out


def plan_unpadded(config, batcher, total: int, name: str) -> None:
  """``config.train.unpad``: the batcher's batches carry token indexes for the run's
  ``total`` steps, so the encoder's dense layers skip padding (``models/unpad.py``)."""
  t = config.train
  if not t.unpad:
    return
  shards = sharding.batch_shards(sharding.make_mesh(config.mesh.data, config.mesh.fsdp))
  plan = batcher.plan_unpadded(total, shards, t.unpad_multiple)
  log.info("%s: unpadded dense layers, per bucket and side: %s", name, plan.describe())


def fit(
  config, workdir: Path, loss_fn, init_params, frozen_params, batch_fn, total: int, name: str
) -> dict:
  """The training loop shared by every objective.

  Args:
    workdir: checkpoints go to ``workdir/checkpoints``, metrics to ``workdir/metrics.jsonl``.
    loss_fn: ``(params, frozen_params, batch, rng) -> (loss, metrics)``.
    init_params: trainable parameters at step 0 (copied; the state is donated).
    frozen_params: passed to every step unchanged (the teacher), or ``{}``.
    batch_fn: ``step -> dict of host arrays`` (a pure function of the step).
    total: number of steps.
  Returns ``{"params", "steps", "resumed_from", "final"}``.
  Raises:
    optical_jax.errors.Preempted: a SIGTERM or SIGINT arrived (``training/preemption.py``): the
      step it ended is checkpointed, on every process the same step, and the log is closed.
  """
  t = config.train
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  optimizer, schedule = make_optimizer(
    t.learning_rate, total, t.warmup_steps, t.weight_decay, t.grad_clip, t.freeze_embeddings
  )
  state = TrainState.create(jax.tree_util.tree_map(jnp.copy, init_params), optimizer, config.seed)
  step_fn = sharded_step(mesh, loss_fn, optimizer, state, frozen_params)
  state, frozen_params = step_fn.put(state, frozen_params)
  batch_shard = step_fn.batch
  ckpt = Checkpointer(
    workdir / "checkpoints",
    every=t.checkpoint_every,
    keep=t.keep_checkpoints,
    async_save=t.async_checkpointing,
  )
  restored = ckpt.restore_latest(abstract_like(state))
  if restored is not None:
    state = restored
  writer = MetricWriter(workdir, tensorboard=t.tensorboard)
  start = int(state.step)
  log.info("%s: %d steps (starting at %d), mesh %s", name, total, start, dict(mesh.shape))
  progress = Progress(total, start)
  last, pending = {}, []
  with preemption.StopOnSignal() as stop:  # SIGTERM/SIGINT: save this step, raise Preempted
    for step in range(start, total):
      batch = batch_fn(step)
      sharding.global_batch_size_ok(next(iter(batch.values())).shape[0], mesh)
      state, metrics = step_fn(state, _to_global(batch, batch_shard), frozen_params)
      pending.append((step + 1, metrics))
      logs = (step + 1) % t.log_every == 0 or step + 1 == total
      synced = logs or (step + 1) % ckpt.every == 0
      if synced:
        # Metrics stay on the device between log and checkpoint steps, so the host builds the
        # next batch while the device computes (no sync per step); fetched here, every pending
        # step is checked, so a non-finite value names its own step and is never checkpointed.
        for k, m in jax.device_get(pending):
          check_finite(k, {n: float(v) for n, v in m.items()}, str(workdir))
        last = {n: float(v) for n, v in jax.device_get(metrics).items()}
        last["learning_rate"] = float(schedule(step))
        pending = []
      if logs:
        writer.write(step + 1, last)
        log.info("%s %s", name, progress.line(step + 1, last))
      ckpt.save(step + 1, state)
      if os.environ.get(KILL_ENV) == str(step + 1):
        os.kill(os.getpid(), signal.SIGKILL)
      preemption.inject(step + 1)
      if stop.reached(step + 1, synced) and step + 1 < total:
        for k, m in jax.device_get(pending):  # never checkpoint a non-finite step
          check_finite(k, {n: float(v) for n, v in m.items()}, str(workdir))
        if ckpt.manager.latest_step() != step + 1:
          ckpt.save(step + 1, state, force=True)
        ckpt.close()  # waits for the save
        writer.close()
        log.warning("%s: preempted: step %d saved under %s", name, step + 1, ckpt.directory)
        raise Preempted(step + 1)
  if total > start and ckpt.manager.latest_step() != total:
    ckpt.save(total, state, force=True)
  ckpt.close()
  writer.close()
  if jax.process_count() > 1:  # parameters may be sharded over devices of other hosts
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    params = multihost_utils.process_allgather(state.params, tiled=True)
  else:
    params = jax.device_get(state.params)
  return {"params": params, "steps": total, "resumed_from": start, "final": last}


def distinct_english(pairs):
  """``(texts, index)``: the distinct English sides of ``(english, foreign)`` pairs in order of
  first appearance, and each pair's row among them (equal English sentences share a row, so a
  repeated sentence is never its own negative)."""
  rows: Dict[str, int] = {}
  index = np.asarray([rows.setdefault(e, len(rows)) for e, _ in pairs], np.int32)
  return list(rows), index


def english_bank(teacher: LoadedEncoder, texts, config, prefix: str) -> np.ndarray:
  """The frozen teacher's unit sentence embeddings of ``texts`` -> float32 [N, d]: the negatives
  of ``distill.contrastive_negatives='bank'`` (pooled as the contrastive term pools, at the
  training token limit and prefix)."""
  start = time.time()
  bank = encode_texts(
    teacher,
    texts,
    pooling=config.distill.pooling,
    max_length=config.data.max_length,
    prefix=prefix,
    normalize=True,
    progress=False,
  )
  log.info(
    "English bank: %d distinct sentences embedded by the teacher in %.1fs (%.1f MB)",
    len(texts),
    time.time() - start,
    bank.nbytes / 2**20,
  )
  return bank


def fit_projection(student: LoadedEncoder, teacher: LoadedEncoder, texts, config) -> tuple:
  """The start of a cross-model student's output projection: the ridge regression of the
  teacher's pooled English states on the student's (each at its own prefix, ``distill.pooling``,
  the training token limit), over ``texts``. Mean pooling commutes with a linear map, so the
  same kernel maps the student's token states. The ridge is 1e-3 x the mean eigenvalue of the
  student's Gram matrix. Returns ``(kernel float32 [d_student, d_teacher], info)``, ``info``
  with the fit's R^2 (share of the teacher's variance explained)."""
  start = time.time()
  kw = dict(pooling=config.distill.pooling, max_length=config.data.max_length, progress=False)
  s = encode_texts(student, texts, prefix=_prefix(student, config), **kw).astype(np.float64)
  t = encode_texts(teacher, texts, prefix=_prefix(teacher, config), **kw).astype(np.float64)
  gram = s.T @ s
  ridge = 1e-3 * np.trace(gram) / gram.shape[0]
  kernel = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), s.T @ t)
  residual = np.sum(np.square(s @ kernel - t))
  r2 = 1.0 - residual / max(np.sum(np.square(t - t.mean(0))), 1e-12)
  log.info(
    "output projection %d -> %d fitted on %d English sentences in %.1fs: R^2 %.3f",
    s.shape[1],
    t.shape[1],
    len(texts),
    time.time() - start,
    r2,
  )
  return kernel.astype(np.float32), {"texts": len(texts), "r2": round(float(r2), 4)}


def student_start(config, teacher: LoadedEncoder, student: LoadedEncoder, pairs):
  """``(student model, trainable params, info)`` at step 0. The self-teacher's student is its
  copy; a student of another model (``config.teacher.model``) keeps its own weights and gets an
  output projection into the teacher's width (:func:`fit_projection`), and a copy of the
  teacher's retrieval head if it has one."""
  params = teacher.retrieval_params()
  if student is teacher:
    return teacher, params, {}
  cfg = student.config.replace(output_dim=teacher.config.output_size)
  english = list(dict.fromkeys(e for e, _ in pairs))[: config.teacher.projection_fit_texts]
  kernel, info = fit_projection(student, teacher, english, config)
  encoder = {
    "params": dict(student.params["params"], output_projection={"kernel": jnp.asarray(kernel)})
  }
  model = dataclasses.replace(
    student, config=cfg, module=Encoder(cfg), params=encoder, head=teacher.head
  )
  return model, model.retrieval_params(), {"projection_fit": info}


@dataclasses.dataclass
class DistillSetup:
  """What a distillation run trains, before its first step (:func:`prepare_distill`).

  Attributes:
    model: the student model at step 0 (the teacher's copy, or its own model with the output
      projection); ``init``: its trainable params ``{"encoder", "head"?}``.
    frozen: the teacher's params (and ``english_bank`` [N, d] for bank negatives).
    loss_fn: ``(params, frozen, batch, rng) -> (loss, metrics)``.
    batcher: the run's batches (``batcher.batch(step)``); ``total``: its number of steps.
    info: extra summary fields (``projection_fit`` for a cross-model student).
  """

  model: LoadedEncoder
  init: dict
  frozen: dict
  loss_fn: object
  batcher: BitextBatcher
  total: int
  info: dict


def prepare_distill(
  config, teacher: LoadedEncoder, pairs, student: LoadedEncoder = None
) -> DistillSetup:
  """Everything :func:`distill` trains with, from the training ``pairs``; ``student``: the
  student's own model when the teacher is another one (None: the teacher's copy)."""
  t = config.train
  spec = DistillSpec.from_config(config)
  model, init, info = student_start(config, teacher, student or teacher, pairs)
  prefix = _prefix(teacher, config)
  bank_texts, bank_index = None, None
  if spec.uses_bank:
    bank_texts, bank_index = distinct_english(pairs)
  batcher = BitextBatcher(
    pairs,
    model.tokenizer,
    teacher.tokenizer,
    t.batch_size,
    max_length=config.data.max_length,
    buckets=tuple(config.data.buckets),
    seed=config.seed,
    weighting=config.ot.weighting,
    include_special_tokens=config.ot.include_special_tokens,
    student_prefix=_prefix(model, config),
    teacher_prefix=prefix,
    bank_index=bank_index,
  )
  total = t.num_steps if t.num_steps > 0 else t.num_epochs * batcher.steps_per_epoch
  log.info(
    "distilling with %s on %d pairs: %d steps of %d (%d steps/epoch)",
    spec.objective,
    len(pairs),
    total,
    t.batch_size,
    batcher.steps_per_epoch,
  )
  plan_unpadded(config, batcher, total, "distill")
  teacher_params = teacher.retrieval_params()
  if teacher_params["head"] is None or not spec.use_head:
    teacher_params.pop("head")
    init.pop("head", None)
  frozen = teacher_params
  if spec.uses_bank:
    frozen = dict(teacher_params, english_bank=english_bank(teacher, bank_texts, config, prefix))
  loss_fn = make_loss(
    model.module,
    spec,
    freeze_embeddings=t.freeze_embeddings,
    teacher_module=None if model is teacher else teacher.module,
  )
  return DistillSetup(model, init, frozen, loss_fn, batcher, total, info)


def distill(
  config,
  teacher: LoadedEncoder,
  splits: Dict[str, dict],
  workdir: Path,
  student: LoadedEncoder = None,
) -> dict:
  """Trains the student on the training pairs of every language. Returns :func:`fit`'s summary
  plus ``model`` (the student model at step 0) and ``init`` (its trainable params).
  ``student``: the student's own model when the teacher is another one (None: the teacher's
  copy)."""
  pairs = [p for s in splits.values() for p in s["train"]]
  setup = prepare_distill(config, teacher, pairs, student)
  summary = fit(
    config,
    workdir,
    setup.loss_fn,
    setup.init,
    setup.frozen,
    setup.batcher.batch,
    setup.total,
    "distill",
  )
  summary.update(
    pairs=len(pairs),
    truncated=setup.batcher.num_truncated,
    model=setup.model,
    init=setup.init,
    **setup.info,
  )
  return summary


def finetune_teacher(config, base: LoadedEncoder, workdir: Path) -> LoadedEncoder:
  """Fine-tunes ``base`` on English triples (``config.teacher``); writes and returns the teacher.

  The late-interaction ranker adds a ``projection_dim`` head (ColBERT); the dense one has none.
  """
  tc = config.teacher
  directory = workdir / "teacher"
  model_dir = directory / "model"
  if (model_dir / "config.json").is_file():
    log.info("teacher: using the fine-tuned teacher already in %s", model_dir)
    return load_encoder(str(model_dir), **_model_options(config))
  triples = read_triples(tc.triples)
  batcher = TripleBatcher(
    triples,
    base.tokenizer,
    tc.batch_size,
    tc.max_query_length,
    tc.max_doc_length,
    config.seed,
    base.query_prefix,
    base.doc_prefix,
  )
  total = tc.num_steps if tc.num_steps > 0 else tc.num_epochs * batcher.steps_per_epoch
  plan_unpadded(config, batcher, total, "teacher")
  params = {"encoder": base.params}
  if tc.ranker == "maxsim":
    params["head"] = init_head(
      jax.random.PRNGKey(config.seed), base.config.output_size, tc.projection_dim
    )
  loss_fn = functools.partial(
    teacher_contrastive_loss,
    module=base.module,
    spec=TeacherSpec(tc.ranker, config.distill.pooling, tc.temperature),
  )
  train_cfg = config.copy_and_resolve_references()
  with train_cfg.unlocked():
    train_cfg.train.learning_rate = tc.learning_rate
  summary = fit(train_cfg, directory, loss_fn, params, {}, batcher.batch, total, "teacher")
  save_hf_directory(
    model_dir,
    base.config,
    summary["params"]["encoder"],
    base.tokenizer,
    pooling=base.pooling,
    query_prefix=base.query_prefix,
    doc_prefix=base.doc_prefix,
    head=summary["params"].get("head"),
    extra_meta={"base": config.model, "ranker": tc.ranker, "triples": tc.triples},
  )
  return load_encoder(str(model_dir), **_model_options(config))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the configured job; writes ``results.json``, ``results.md`` and (when
  training) ``student/``, ``metrics.jsonl``, ``checkpoints/``. Returns the results.

  One run per work dir: process 0 holds ``io.work_lock`` on it (taken after the config's
  checks, before anything is read); a second run is refused with one line naming the holder.
  A SIGTERM or SIGINT while training saves and raises ``errors.Preempted`` (:func:`fit`)."""
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
  splits, manifest = load_splits_with_manifest(config, checks, registry.guard_collection)
  data = {k: manifest[k] for k in ("train_sha256", "test_sha256")}
  identity.check(work, data=data)  # before any model loads
  teacher = load_encoder(config.teacher.get("model", "") or config.model, **_model_options(config))
  student_base = teacher  # the self-teacher: the student starts as the teacher's copy
  model_hash = fingerprint(teacher)
  if config.teacher.get("model", ""):  # a teacher of another model: the student is config.model
    student_base = load_encoder(config.model, **_model_options(config))
    model_hash = f"{model_hash}+{fingerprint(student_base)}"
  validate_for_model(config, student_base.config.num_layers)
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
  rows = {"zero_shot": evaluate_matching(teacher, teacher, splits, config)}
  if student_base is not teacher:  # the student's own model on both sides, for reference
    rows["student_zero_shot"] = evaluate_matching(student_base, student_base, splits, config)
  training = None
  if config.method != "zero_shot":
    summary = distill(
      config, teacher, splits, work, student=None if student_base is teacher else student_base
    )
    model, init = summary.pop("model"), summary.pop("init")
    # interpolated from the student's start (the teacher's copy, or its own weights + the
    # fitted projection) towards the trained weights
    encoder = interpolate(init["encoder"], summary["params"]["encoder"], config.train.interpolation)
    student = dataclasses.replace(
      model, params=jax.tree_util.tree_map(jnp.asarray, encoder), head=summary["params"].get("head")
    )
    rows[config.method] = evaluate_matching(student, teacher, splits, config)
    if lead and model is not teacher:  # the start of later interpolations (dev_eval.reevaluate)
      kernel = np.asarray(init["encoder"]["params"]["output_projection"]["kernel"])
      save_npy_atomic(work / dev_eval.PROJECTION_START, kernel)
    if lead:
      save_hf_directory(
        work / "student",
        student.config,
        encoder,
        student.tokenizer,
        pooling=student.pooling,
        query_prefix=student.query_prefix,
        doc_prefix=student.doc_prefix,
        head=student.head,
        extra_meta={"teacher": teacher.source, "method": config.method},
      )
    training = {k: v for k, v in summary.items() if k != "params"}
  retrieval = None
  if registry.dev_checks(config):
    retrieval = dev_eval.evaluate_dev(
      student if config.method != "zero_shot" else teacher,
      teacher,
      config,
      work,
      interpolation=config.train.interpolation,
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
