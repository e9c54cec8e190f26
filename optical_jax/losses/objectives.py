"""The distillation objectives and the teacher's fine-tuning loss, one loss function each.

Every objective has the signature ``loss_fn(params, teacher_params, batch, rng) -> (loss,
metrics)``, bound to its static settings (:class:`DistillSpec`) with :func:`make_loss`;
``training/steps.py: train_step`` is the one update rule that takes it. Losses are written on
global arrays: XLA inserts the collectives when the batch is sharded over the mesh.

Batch (from :class:`optical_jax.data.pipeline.BitextBatcher`)::

  student_ids, student_mask  [B, m] int32   foreign sentence (student side)
  student_weights            [B, m] float32 OT marginal weights (0 = ignore)
  teacher_ids, teacher_mask  [B, n] int32   English sentence (teacher side)
  teacher_weights            [B, n] float32
  bank_index                 [B]    int32   row of each pair's English sentence in the
                                            teacher's ``english_bank`` (-1 = filler row);
                                            only with ``contrastive_negatives='bank'``
  student_token_index        [S, Ns] int32  optional: unpadded dense layers
  teacher_token_index        [S, Nt] int32  (``models/unpad.py``; ``config.train.unpad``)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from optical_jax.losses.contrastive import contrastive_loss
from optical_jax.losses.kd import (
  bank_contrastive,
  maxsim_contrastive,
  maxsim_mean_scores,
  reverse_contrastive,
  sampled_bank,
  sentence_contrastive,
  sentence_mse,
  token_mse_greedy,
)
from optical_jax.losses.ot import SinkhornConfig, ot_distillation_loss
from optical_jax.models.encoder import Encoder
from optical_jax.models.pooling import l2_normalize, pool
from optical_jax.models.scoring import (
  hidden_states,
  maxsim_scores,
  sentence_embeddings,
  token_embeddings,
)

OBJECTIVES = ("optical", "kd_sentence", "kd_token")
#: Negatives of the contrastive term: the batch's English sentences, or the bank of every
#: distinct English sentence of the training set (``losses/kd.py: bank_contrastive``).
NEGATIVES = ("batch", "bank")
#: How the contrastive term scores a foreign sentence against an English one: pooled vectors
#: (what the dense ranker reads) or late interaction over token vectors (what MaxSim reads;
#: ``losses/kd.py: maxsim_contrastive``).
CONTRASTIVE_RANKERS = ("dense", "maxsim")


@dataclasses.dataclass(frozen=True)
class DistillSpec:
  """Static settings of a distillation objective (see ``configs/default.py``)."""

  objective: str = "optical"
  layer: int = -1
  use_head: bool = True
  pooling: str = "mean"
  sinkhorn: SinkhornConfig = SinkhornConfig()
  #: Weight of a sentence-embedding MSE term (last layer, ``pooling``) added to the token
  #: objectives (``optical``, ``kd_token``): what the dense ranker reads, next to the token
  #: alignment that late interaction reads. 0 = the objective alone.
  sentence_weight: float = 0.0
  #: Weight of an in-batch contrastive term on last-layer sentence embeddings (student foreign
  #: against the teacher's English of the whole batch; ``losses/kd.py``), added to any objective.
  contrastive_weight: float = 0.0
  #: Its softmax temperature over cosine similarities.
  contrastive_temperature: float = 0.05
  #: Its negatives (:data:`NEGATIVES`); ``"bank"`` needs ``teacher_params["english_bank"]``
  #: [N, d] and ``batch["bank_index"]`` [B] (``training/student.py: english_bank``).
  contrastive_negatives: str = "batch"
  #: Bank only: share of the teacher's own distribution over the bank in the term's target
  #: (``losses/kd.py: bank_contrastive``; 0 = one-hot InfoNCE).
  contrastive_soft: float = 0.0
  #: Weight of the objective itself (0 with a contrastive weight: the contrastive term alone,
  #: an ablation).
  objective_weight: float = 1.0
  #: Scoring of the contrastive term (:data:`CONTRASTIVE_RANKERS`); ``"maxsim"`` with the bank
  #: needs ``teacher_params["english_bank_tokens"]`` [N, L, p] and ``["english_bank_mask"]``
  #: [N, L] (``training/student.py: english_bank_tokens``).
  contrastive_ranker: str = "dense"
  #: Weight, relative to the term, of its other direction (English -> the batch's foreign
  #: sentences, ``losses/kd.py: reverse_contrastive``): keeps the student's foreign vectors good
  #: documents; 0 = foreign -> English only.
  contrastive_reverse: float = 0.0
  #: MaxSim with the bank only: negatives per step drawn uniformly from the bank (with the
  #: batch's own sentences as the positives; ``fold_in`` of the step's rng, so a resumed run
  #: draws the same); 0 = the whole bank every step (a [B x m] x [N x L] product).
  contrastive_bank_sample: int = 0
  #: With ``contrastive_bank_sample``: also each batch row's nearest bank sentences (the
  #: teacher's pooled cosine; ``teacher_params["english_bank_neighbors"]`` [N, k], from
  #: ``training/student.py: bank_neighbors``), the hard negatives a uniform draw rarely holds.
  contrastive_bank_hard: int = 0

  @classmethod
  def from_config(cls, config) -> "DistillSpec":
    """The spec of a train.py config (``method``, ``distill``, ``ot``); its checks raise
    ValueError for a bad value."""
    d = config.distill
    return cls(
      objective=config.method,
      layer=d.layer,
      use_head=d.use_head,
      pooling=d.pooling,
      sinkhorn=SinkhornConfig.from_mapping(config.ot),
      sentence_weight=d.sentence_weight,
      contrastive_weight=d.get("contrastive_weight", 0.0),
      contrastive_temperature=d.get("contrastive_temperature", 0.05),
      contrastive_negatives=d.get("contrastive_negatives", "batch"),
      contrastive_soft=d.get("contrastive_soft", 0.0),
      objective_weight=d.get("objective_weight", 1.0),
      contrastive_ranker=d.get("contrastive_ranker", "dense"),
      contrastive_reverse=d.get("contrastive_reverse", 0.0),
      contrastive_bank_sample=d.get("contrastive_bank_sample", 0),
      contrastive_bank_hard=d.get("contrastive_bank_hard", 0),
    )

  @property
  def uses_bank(self) -> bool:
    """Whether the step needs the English bank (and the batch its ``bank_index``)."""
    return bool(self.contrastive_weight) and self.contrastive_negatives == "bank"

  @property
  def needs_last(self) -> bool:
    """Whether a sentence term needs the last layer's states."""
    return bool(self.sentence_weight or self.contrastive_weight)

  def __post_init__(self):
    if self.objective not in OBJECTIVES:
      raise ValueError(f"objective {self.objective!r} not in {OBJECTIVES}")
    if self.sentence_weight < 0:
      raise ValueError(f"sentence_weight {self.sentence_weight} < 0")
    if self.contrastive_weight < 0:
      raise ValueError(f"contrastive_weight {self.contrastive_weight} < 0")
    if self.objective_weight < 0 or not (self.objective_weight or self.contrastive_weight):
      raise ValueError(
        f"objective_weight {self.objective_weight} must be >= 0, and > 0 unless "
        "contrastive_weight is set (nothing to train otherwise)"
      )
    if self.contrastive_negatives not in NEGATIVES:
      raise ValueError(f"contrastive_negatives {self.contrastive_negatives!r} not in {NEGATIVES}")
    if not 0.0 <= self.contrastive_soft <= 1.0:
      raise ValueError(f"contrastive_soft {self.contrastive_soft} not in [0, 1]")
    if self.contrastive_soft and self.contrastive_negatives != "bank":
      raise ValueError(
        "contrastive_soft needs contrastive_negatives='bank' (the targets are the "
        "teacher's similarities over the bank)"
      )
    if self.contrastive_ranker not in CONTRASTIVE_RANKERS:
      raise ValueError(
        f"contrastive_ranker {self.contrastive_ranker!r} not in {CONTRASTIVE_RANKERS}"
      )
    if self.contrastive_soft and self.contrastive_ranker == "maxsim":
      raise ValueError(
        "contrastive_soft is for contrastive_ranker='dense' (the soft targets are pooled "
        "similarities); set it to 0 with 'maxsim'"
      )
    if self.contrastive_bank_sample < 0 or self.contrastive_bank_hard < 0:
      raise ValueError("contrastive_bank_sample and contrastive_bank_hard must be >= 0")
    if self.contrastive_bank_hard and not self.contrastive_bank_sample:
      raise ValueError("contrastive_bank_hard needs contrastive_bank_sample > 0")
    if self.contrastive_reverse < 0:
      raise ValueError(f"contrastive_reverse {self.contrastive_reverse} < 0")
    if not self.contrastive_temperature > 0:
      raise ValueError(f"contrastive_temperature {self.contrastive_temperature} must be > 0")


def _student_kwargs(module: Encoder, rng):
  if module.config.dropout_rate > 0:
    return dict(deterministic=False, rngs={"dropout": rng})
  return dict(deterministic=True, rngs=None)


def _side(batch, side: str):
  """``(ids, mask)`` of one side, plus its ``token_index`` (unpadded dense layers) when the
  batch carries one (``models/unpad.py``)."""
  return (batch[f"{side}_ids"], batch[f"{side}_mask"]), {
    "token_index": batch.get(f"{side}_token_index")
  }


def _states(module: Encoder, encoder_params, args, kw, spec: DistillSpec, **student_kw):
  """Hidden states ``(at spec.layer, at the last layer)`` [B, T, d] from one forward pass; the
  second is None unless a sentence term (``spec.needs_last``) needs it."""
  last = spec.layer in (-1, module.config.num_layers)
  if not spec.needs_last or last:
    h = hidden_states(module, encoder_params, *args, spec.layer, **kw, **student_kw)
    return h, (h if spec.needs_last else None)
  out = module.apply(
    encoder_params,
    *args,
    output_hidden_states=True,
    **kw,
    **{"deterministic": True, "rngs": None, **student_kw},
  )
  return out.hidden_states[spec.layer], out.last_hidden_state


def _token_vectors(h, params, mask, spec: DistillSpec):
  """Hidden states -> normalised token vectors, as ``models.scoring.token_embeddings``."""
  h = h.astype(jnp.float32)
  if spec.use_head and params.get("head") is not None:
    h = h @ params["head"]["kernel"]
  return l2_normalize(h) * mask[..., None].astype(jnp.float32)


def _token_objective(
  token_loss: Callable,
  params,
  teacher_params,
  batch,
  rng,
  module: Encoder,
  spec: DistillSpec,
  teacher_module: Optional[Encoder] = None,
):
  """A token objective on normalised token embeddings (student: foreign, teacher: English; no
  gradient into the teacher), plus ``spec.sentence_weight`` x the sentence MSE.
  ``teacher_module``: the teacher's encoder when it is another model than the student's
  (``config.teacher.model``; the student's output projection carries it into the teacher's
  width); None = the student's own architecture."""
  args, kw = _side(batch, "teacher")
  t_h, t_last = jax.lax.stop_gradient(
    _states(teacher_module or module, teacher_params["encoder"], args, kw, spec)
  )
  args, kw = _side(batch, "student")
  s_h, s_last = _states(module, params["encoder"], args, kw, spec, **_student_kwargs(module, rng))
  student = _token_vectors(s_h, params, batch["student_mask"], spec)
  teacher = _token_vectors(t_h, teacher_params, batch["teacher_mask"], spec)
  loss, metrics = token_loss(student, teacher)
  if spec.sentence_weight:
    sent, _ = sentence_mse(
      s_last, batch["student_mask"], t_last, batch["teacher_mask"], spec.pooling
    )
    metrics = dict(metrics, token_loss=loss, sentence_mse=sent)
    loss = loss + spec.sentence_weight * sent
  return _with_contrastive(loss, metrics, s_last, t_last, batch, params, teacher_params, spec, rng)


def _with_contrastive(
  loss, metrics, s_last, t_last, batch, params, teacher_params, spec: DistillSpec, rng=None
):
  """``objective_weight * loss + contrastive_weight * contrastive term`` (the term only when
  its weight is set; against the batch or the English bank, ``spec.contrastive_negatives``;
  pooled or late interaction, ``spec.contrastive_ranker``)."""
  if spec.objective_weight != 1.0:
    metrics = dict(metrics, objective_loss=loss)
    loss = spec.objective_weight * loss
  if not spec.contrastive_weight:
    return loss, metrics
  if spec.contrastive_ranker == "maxsim":
    student = _token_vectors(s_last, params, batch["student_mask"], spec)
    exclude = None
    if spec.uses_bank:
      docs = teacher_params["english_bank_tokens"]
      docs_mask = teacher_params["english_bank_mask"]
      index = batch["bank_index"]
      if spec.contrastive_bank_sample:
        docs, docs_mask, index, exclude = sampled_bank(
          docs,
          docs_mask,
          index,
          spec.contrastive_bank_sample,
          rng,
          teacher_params.get("english_bank_neighbors"),
        )
    else:
      docs = _token_vectors(t_last, teacher_params, batch["teacher_mask"], spec)
      docs_mask = batch["teacher_mask"]
      index = jnp.where(jnp.any(docs_mask > 0, -1), jnp.arange(docs.shape[0]), -1)
    con, con_metrics = maxsim_contrastive(
      student,
      batch["student_mask"],
      docs,
      docs_mask,
      index,
      spec.contrastive_temperature,
      exclude,
    )
  elif spec.uses_bank:
    con, con_metrics = bank_contrastive(
      s_last,
      batch["student_mask"],
      teacher_params["english_bank"],
      batch["bank_index"],
      spec.contrastive_temperature,
      spec.pooling,
      spec.contrastive_soft,
    )
  else:
    con, con_metrics = sentence_contrastive(
      s_last,
      batch["student_mask"],
      t_last,
      batch["teacher_mask"],
      spec.contrastive_temperature,
      spec.pooling,
    )
  if spec.contrastive_reverse:
    rev, rev_metrics = _reverse_term(s_last, t_last, batch, params, teacher_params, spec)
    con_metrics = dict(con_metrics, **rev_metrics)
    con = con + spec.contrastive_reverse * rev
  metrics = {"objective_loss": loss, **metrics, **con_metrics}
  return loss + spec.contrastive_weight * con, metrics


def _reverse_term(s_last, t_last, batch, params, teacher_params, spec: DistillSpec):
  """The contrastive term's English -> foreign direction over the batch, scored as
  ``spec.contrastive_ranker`` scores the term; the English sentences are the bank's rows of
  the batch (``bank_index``) or the batch's own teacher states."""
  s_mask = batch["student_mask"]
  index = batch["bank_index"] if spec.uses_bank else None
  row = None if index is None else jnp.maximum(index, 0)
  if spec.contrastive_ranker == "maxsim":
    student = _token_vectors(s_last, params, s_mask, spec)
    if spec.uses_bank:
      english = teacher_params["english_bank_tokens"][row]
      e_mask = teacher_params["english_bank_mask"][row]
    else:
      english = _token_vectors(t_last, teacher_params, batch["teacher_mask"], spec)
      e_mask = batch["teacher_mask"]
    english = jax.lax.stop_gradient(english)
    scores = maxsim_mean_scores(english, e_mask, student, s_mask)
    e_valid = jnp.any(e_mask > 0, -1)
  else:
    student = l2_normalize(pool(s_last, s_mask, spec.pooling).astype(jnp.float32))
    if spec.uses_bank:
      english = teacher_params["english_bank"][row].astype(jnp.float32)
      e_valid = jnp.ones(english.shape[:1], bool)
    else:
      english = l2_normalize(pool(t_last, batch["teacher_mask"], spec.pooling))
      e_valid = jnp.any(batch["teacher_mask"] > 0, -1)
    scores = jax.lax.stop_gradient(english.astype(jnp.float32)) @ student.T
  valid = jnp.any(s_mask > 0, -1) & e_valid
  if index is not None:
    valid = valid & (index >= 0)
  return reverse_contrastive(scores, valid, spec.contrastive_temperature, index)


def optical_loss(
  params,
  teacher_params,
  batch,
  rng,
  *,
  module: Encoder,
  spec: DistillSpec,
  teacher_module: Optional[Encoder] = None,
):
  """OT distillation between normalised token embeddings (student: foreign, teacher: English;
  the two may come from different tokenizers: OT needs no alignment)."""
  return _token_objective(
    lambda s, t: ot_distillation_loss(
      s, t, batch["student_weights"], batch["teacher_weights"], spec.sinkhorn
    ),
    params,
    teacher_params,
    batch,
    rng,
    module,
    spec,
    teacher_module,
  )


def kd_token_loss(
  params,
  teacher_params,
  batch,
  rng,
  *,
  module: Encoder,
  spec: DistillSpec,
  teacher_module: Optional[Encoder] = None,
):
  """Token-level MSE after greedy alignment (each student token to its most similar teacher
  token, which is also how it aligns across tokenizers), over tokens with non-zero weight."""
  return _token_objective(
    lambda s, t: token_mse_greedy(s, batch["student_weights"] > 0, t, batch["teacher_weights"] > 0),
    params,
    teacher_params,
    batch,
    rng,
    module,
    spec,
    teacher_module,
  )


def kd_sentence_loss(
  params,
  teacher_params,
  batch,
  rng,
  *,
  module: Encoder,
  spec: DistillSpec,
  teacher_module: Optional[Encoder] = None,
):
  """Sentence-embedding MSE (pooled hidden states of the chosen layer; across architectures,
  the student's through its output projection, as in Reimers & Gurevych 2020)."""
  args, kw = _side(batch, "teacher")
  teacher, t_last = jax.lax.stop_gradient(
    _states(teacher_module or module, teacher_params["encoder"], args, kw, spec)
  )
  args, kw = _side(batch, "student")
  student, s_last = _states(
    module, params["encoder"], args, kw, spec, **_student_kwargs(module, rng)
  )
  loss, metrics = sentence_mse(
    student, batch["student_mask"], teacher, batch["teacher_mask"], spec.pooling
  )
  return _with_contrastive(loss, metrics, s_last, t_last, batch, params, teacher_params, spec, rng)


_LOSSES = {"optical": optical_loss, "kd_sentence": kd_sentence_loss, "kd_token": kd_token_loss}


def freeze_word_embeddings(loss_fn: Callable) -> Callable:
  """Wraps a loss so no gradient flows into the word-embedding table.

  With a frozen table (``config.train.freeze_embeddings``) the optimiser would
  discard that gradient anyway; stopping it here lets XLA skip building the dense
  ``[vocab, d]`` gradient every step (250k x 384 for e5).
  """

  def wrapped(params, frozen_params, batch, rng):
    params = jax.tree_util.tree_map_with_path(
      lambda path, x: jax.lax.stop_gradient(x)
      if "word_embeddings" in jax.tree_util.keystr(path)
      else x,
      params,
    )
    return loss_fn(params, frozen_params, batch, rng)

  return wrapped


def make_loss(
  module: Encoder,
  spec: DistillSpec,
  freeze_embeddings: bool = False,
  teacher_module: Optional[Encoder] = None,
) -> Callable:
  """The loss of ``spec.objective`` with its static settings bound. ``module``: the student's
  encoder; ``teacher_module``: the teacher's when it is another model (None = the same)."""
  if teacher_module is not None and spec.layer not in (-1, module.config.num_layers):
    raise ValueError(
      f"distill.layer={spec.layer}: a teacher of another architecture is "
      "distilled at the last layer only (-1), where the student's output "
      "projection maps into the teacher's width"
    )
  loss = functools.partial(
    _LOSSES[spec.objective], module=module, spec=spec, teacher_module=teacher_module
  )
  return freeze_word_embeddings(loss) if freeze_embeddings else loss


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
  """Static settings of teacher fine-tuning (English triples, contrastive)."""

  ranker: str = "maxsim"
  pooling: str = "mean"
  temperature: float = 0.05


def teacher_contrastive_loss(
  params, teacher_params, batch, rng, *, module: Encoder, spec: TeacherSpec
):
  """InfoNCE over in-batch positives and hard negatives (``data/triples.py`` batches).

  ``teacher_params`` is unused (there is no frozen model at this stage).
  """
  del teacher_params
  kw = _student_kwargs(module, rng)
  (q_ids, q_mask), q_kw = _side(batch, "query")
  (d_ids, d_mask), d_kw = _side(batch, "doc")
  if spec.ranker == "maxsim":
    q = token_embeddings(module, params, q_ids, q_mask, **q_kw, **kw)
    d = token_embeddings(module, params, d_ids, d_mask, **d_kw, **kw)
    scores = maxsim_scores(q, q_mask, d, d_mask)
  else:
    q = sentence_embeddings(module, params, q_ids, q_mask, spec.pooling, **q_kw, **kw)
    d = sentence_embeddings(module, params, d_ids, d_mask, spec.pooling, **d_kw, **kw)
    scores = q @ d.T
  loss, acc = contrastive_loss(scores, spec.temperature)
  return loss, {"contrastive": loss, "in_batch_accuracy": acc}
