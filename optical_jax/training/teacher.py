"""The teacher stage: fine-tuning the base model on English triples (``config.teacher``) into
the teacher a run distils from, with the contrastive loss of ``losses/objectives.py``."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import jax

from optical_jax.data.triples import TripleBatcher, read_triples
from optical_jax.loading import LoadedEncoder, load_encoder
from optical_jax.loading.export import save_hf_directory
from optical_jax.losses.objectives import TeacherSpec, teacher_contrastive_loss
from optical_jax.models.scoring import init_head
from optical_jax.training.loop import fit, plan_unpadded
from optical_jax.training.student import model_options

log = logging.getLogger(__name__)


def finetune_teacher(config, base: LoadedEncoder, workdir: Path) -> LoadedEncoder:
  """Fine-tunes ``base`` on English triples (``config.teacher``); writes and returns the teacher.

  The late-interaction ranker adds a ``projection_dim`` head (ColBERT); the dense one has none.
  """
  tc = config.teacher
  directory = workdir / "teacher"
  model_dir = directory / "model"
  if (model_dir / "config.json").is_file():
    log.info("teacher: using the fine-tuned teacher already in %s", model_dir)
    return load_encoder(str(model_dir), **model_options(config))
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
  return load_encoder(str(model_dir), **model_options(config))
