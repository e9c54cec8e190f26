"""The student: its start at step 0, the English bank of its contrastive term, its weight
interpolation towards the start, and its export, one function each.

* :func:`student_start`: the self-teacher's student is the teacher's copy; a student of another
  model keeps its own weights and gets an output projection into the teacher's width, fitted by
  ridge regression (:func:`fit_projection`) and attached by :func:`with_projection` (also how
  ``dev_eval.reevaluate`` rebuilds the start of a finished run from its saved kernel).
* :func:`distinct_english`, :func:`english_bank`, :func:`english_bank_tokens`: the negatives of
  ``distill.contrastive_negatives='bank'`` (pooled, or token matrices for
  ``distill.contrastive_ranker='maxsim'``).
* :func:`interpolate`, :func:`interpolated`: ``start + alpha * (trained - start)`` (WiSE-FT),
  ``config.train.interpolation`` and ``dev_eval --interpolation``.
* :func:`export_student`: ``<workdir>/student`` (an HF directory, loadable by
  ``optical_jax.encode --model <workdir>``) and a cross-model run's step-0 projection.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.encode import encode_texts, encode_tokens
from optical_jax.io import save_npy_atomic
from optical_jax.loading import LoadedEncoder
from optical_jax.loading.export import save_hf_directory
from optical_jax.models.encoder import Encoder

log = logging.getLogger(__name__)


def model_options(config) -> dict:
  """``load_encoder`` keyword arguments from the config's numerics fields."""
  return dict(
    dtype=config.dtype,
    remat=config.remat,
    layer_unroll=config.layer_unroll,
    attention=config.get("attention", "auto"),
  )


def text_prefix(model: LoadedEncoder, config) -> str:
  """The prefix ``model`` encodes bitext with: its query prefix, unless ``config.eval.prefix``
  names one (``"auto"``: the model's)."""
  return model.query_prefix if config.eval.prefix == "auto" else config.eval.prefix


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


#: Texts' worth of tokens per packed forward pass of :func:`english_bank_tokens`.
BANK_BATCH = 64


def english_bank_tokens(
  teacher: LoadedEncoder, texts, config, prefix: str, use_head: bool = True
) -> tuple:
  """The frozen teacher's unit token vectors of ``texts`` (last layer, through its head when it
  has one and ``use_head``, as MaxSim retrieval and the objectives read them; the training
  token limit and prefix) -> ``(tokens float32 [N, L, p], mask bool [N, L])``, ``L`` the
  longest text's tokens: the negatives of ``distill.contrastive_ranker='maxsim'`` with the
  bank (4 bytes x N x L x p)."""
  start = time.time()
  tokens, mask = encode_tokens(
    teacher,
    texts,
    prefix=prefix,
    max_length=config.data.max_length,
    batch_size=BANK_BATCH,
    use_head=use_head,
    dtype=np.float32,
  )
  log.info(
    "English token bank: %d distinct sentences x %d tokens by the teacher in %.1fs (%.1f MB)",
    len(texts),
    tokens.shape[1],
    time.time() - start,
    tokens.nbytes / 2**20,
  )
  return tokens, mask


def bank_neighbors(bank: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
  """bank float32 [N, d] (unit rows) -> int32 [N, k]: each row's k most similar other rows by
  cosine, most similar first (ties to the lower index), computed ``block`` rows at a time."""
  n = len(bank)
  k = min(k, n - 1)
  out = np.zeros((n, max(k, 0)), np.int32)
  for s in range(0, n, block):
    sim = bank[s : s + block] @ bank.T
    sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf  # not its own neighbour
    order = np.lexsort((np.broadcast_to(np.arange(n), sim.shape), -sim), axis=1)[:, :k]
    out[s : s + block] = order
  return out


def fit_projection(student: LoadedEncoder, teacher: LoadedEncoder, texts, config) -> tuple:
  """The start of a cross-model student's output projection: the ridge regression of the
  teacher's pooled English states on the student's (each at its own prefix, ``distill.pooling``,
  the training token limit), over ``texts``. Mean pooling commutes with a linear map, so the
  same kernel maps the student's token states. The ridge is 1e-3 x the mean eigenvalue of the
  student's Gram matrix. Returns ``(kernel float32 [d_student, d_teacher], info)``, ``info``
  with the fit's R^2 (share of the teacher's variance explained)."""
  start = time.time()
  kw = dict(pooling=config.distill.pooling, max_length=config.data.max_length, progress=False)
  s = encode_texts(student, texts, prefix=text_prefix(student, config), **kw).astype(np.float64)
  t = encode_texts(teacher, texts, prefix=text_prefix(teacher, config), **kw).astype(np.float64)
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


def with_projection(student: LoadedEncoder, teacher: LoadedEncoder, kernel) -> LoadedEncoder:
  """``student``'s own model with the output projection ``kernel`` [d_student, d_teacher] into
  the teacher's width, and the teacher's retrieval head (None if it has none)."""
  cfg = student.config.replace(output_dim=teacher.config.output_size)
  encoder = {"params": dict(student.params["params"], output_projection={"kernel": kernel})}
  return dataclasses.replace(
    student, config=cfg, module=Encoder(cfg), params=encoder, head=teacher.head
  )


def student_start(config, teacher: LoadedEncoder, student: LoadedEncoder, pairs):
  """``(student model, trainable params, info)`` at step 0. The self-teacher's student is its
  copy; a student of another model (``config.teacher.model``) keeps its own weights and gets an
  output projection into the teacher's width (:func:`fit_projection`), and a copy of the
  teacher's retrieval head if it has one."""
  params = teacher.retrieval_params()
  if student is teacher:
    return teacher, params, {}
  english = list(dict.fromkeys(e for e, _ in pairs))[: config.teacher.projection_fit_texts]
  kernel, info = fit_projection(student, teacher, english, config)
  model = with_projection(student, teacher, jnp.asarray(kernel))
  return model, model.retrieval_params(), {"projection_fit": info}


def interpolate(teacher_params, student_params, alpha: float):
  """Weight-space interpolation ``teacher + alpha * (student - teacher)`` (WiSE-FT, Wortsman et
  al. 2022): alpha = 1 is the trained student, 0 the teacher; in between keeps part of what
  distillation learned and part of what the teacher knew (``config.train.interpolation``)."""
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"config.train.interpolation={alpha}; expected a value in [0, 1]")
  if alpha == 1.0:
    return student_params
  return jax.tree_util.tree_map(
    lambda t, s: np.asarray(t + alpha * (np.asarray(s) - t), np.asarray(s).dtype),
    jax.device_get(teacher_params),
    student_params,
  )


def interpolated(
  model: LoadedEncoder, start, trained, alpha: float, head: Optional[dict]
) -> LoadedEncoder:
  """``model`` with the encoder params :func:`interpolate` ``(start, trained, alpha)`` (as
  device arrays) and the retrieval ``head``."""
  encoder = interpolate(start, trained, alpha)
  return dataclasses.replace(model, params=jax.tree_util.tree_map(jnp.asarray, encoder), head=head)


def trained_ranker(config) -> str:
  """The ranker a student of ``config`` is trained for, recorded in its export (``ranker``,
  which ``eval.py --ranker auto`` follows): ``"maxsim"`` when its contrastive term scores by
  late interaction (``distill.contrastive_ranker``), else ``"dense"``."""
  d = config.distill
  maxsim = d.get("contrastive_weight", 0.0) and d.get("contrastive_ranker", "dense") == "maxsim"
  return "maxsim" if maxsim else "dense"


def export_student(
  work: Path,
  student: LoadedEncoder,
  teacher: LoadedEncoder,
  method: str,
  start_file: str,
  start=None,
  ranker: str = "dense",
) -> None:
  """Writes ``work/student``: ``student`` as an HF directory (its meta naming the teacher and
  ``method``, the ``ranker`` it was trained for (:func:`trained_ranker`) and ``query_only``: its
  documents are to be encoded by the teacher). For a cross-model
  student, first ``work/start_file``: the output projection of
  its step-0 encoder params ``start`` (float32 [d_student, d_teacher]; ``start`` None for the
  teacher's copy), where later interpolations start from (``dev_eval.reevaluate``, with
  :func:`with_projection`)."""
  if start is not None:
    kernel = np.asarray(start["params"]["output_projection"]["kernel"])
    save_npy_atomic(work / start_file, kernel)
  save_hf_directory(
    work / "student",
    student.config,
    jax.device_get(student.params),
    student.tokenizer,
    pooling=student.pooling,
    query_prefix=student.query_prefix,
    doc_prefix=student.doc_prefix,
    head=student.head,
    extra_meta={
      "teacher": teacher.source,
      "method": method,
      "ranker": ranker,
      # Its queries are trained to meet the teacher's documents; as a document encoder it is
      # worse than the teacher (docs/RESEARCH.md, "The student as a document encoder"), so
      # eval.py refuses it as --doc_model (retrieval/collection_eval.py:check_document_model).
      "query_only": True,
    },
  )
