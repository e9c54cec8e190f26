"""A distillation run: its setup before the first step (:func:`prepare_distill`: the student's
start, the batcher, the English bank, the objective) and its training (:func:`distill`, through
``training/loop.py: fit``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict

from optical_jax.data.pipeline import BitextBatcher
from optical_jax.loading import LoadedEncoder
from optical_jax.losses.objectives import DistillSpec, make_loss
from optical_jax.training.loop import fit, plan_unpadded
from optical_jax.training.student import (
  distinct_english,
  english_bank,
  english_bank_tokens,
  bank_neighbors,
  student_start,
  text_prefix,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DistillSetup:
  """What a distillation run trains, before its first step (:func:`prepare_distill`).

  Attributes:
    model: the student model at step 0 (the teacher's copy, or its own model with the output
      projection); ``init``: its trainable params ``{"encoder", "head"?}``.
    frozen: the teacher's params (and ``english_bank`` [N, d] for bank negatives, or
      ``english_bank_tokens`` [N, L, p] + ``english_bank_mask`` [N, L] for MaxSim ones).
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
  prefix = text_prefix(teacher, config)
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
    student_prefix=text_prefix(model, config),
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
  if spec.uses_bank and spec.contrastive_ranker == "maxsim":
    tokens, mask = english_bank_tokens(teacher, bank_texts, config, prefix, "head" in frozen)
    frozen = dict(teacher_params, english_bank_tokens=tokens, english_bank_mask=mask)
    if spec.contrastive_bank_hard:  # the nearest English sentences by the teacher's vectors
      dense = english_bank(teacher, bank_texts, config, prefix)
      frozen["english_bank_neighbors"] = bank_neighbors(dense, spec.contrastive_bank_hard)
  elif spec.uses_bank:
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
