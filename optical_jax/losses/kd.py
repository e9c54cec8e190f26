"""Knowledge-distillation baselines, on the same inputs as the OT loss.

* :func:`sentence_mse`: MSE between the student's sentence embedding of the
  foreign sentence and the teacher's of the English one (Reimers & Gurevych
  2020, "Making monolingual sentence embeddings multilingual"; their second
  term, student(English) vs teacher(English), is left out because the
  document side is always encoded by the unchanged teacher).
* :func:`sentence_contrastive`: in-batch InfoNCE between the student's
  sentence embedding of each foreign sentence and the teacher's of every English
  sentence of the batch (the translation-ranking loss of Yang et al. 2019 and
  LaBSE, with the teacher's embeddings as fixed keys): an extra term, not an
  objective of its own.
* :func:`bank_contrastive`: the same term against a fixed bank of the teacher's
  embeddings of every distinct English sentence of the training set (the
  teacher is frozen, so the bank never goes stale): every English sentence is
  a negative, not only the batch's (a full softmax in place of a sampled one).
* :func:`maxsim_contrastive`: the contrastive term at the token level, for a student that
  retrieves by late interaction: each foreign sentence's student token vectors against the
  teacher's token matrices of the English sentences (the batch's or the bank's), scored by
  MaxSim (ColBERT; the score the MaxSim ranker sorts by, divided by the query's tokens).
* :func:`reverse_contrastive`: the term's other direction (English -> foreign): each English
  sentence, as the teacher encodes it, against the student's foreign sentences of the batch, so
  that the student's foreign vectors stay good *documents* (English queries retrieve them).
* :func:`token_mse_greedy`: token-level MSE after a greedy one-to-one
  alignment by cosine similarity (DR.DECR style, Li et al. 2022): repeatedly
  take the most similar unmatched (student, teacher) token pair; the
  alignment is held fixed (no gradient through the argmax).

Both return ``(loss, metrics)`` with the loss averaged over pairs that have
tokens on both sides, as :func:`optical_jax.losses.ot.ot_distillation_loss`.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from optical_jax.losses.ot import cosine_cost
from optical_jax.models.pooling import l2_normalize, pool


def _pair_mean(values: jax.Array, valid: jax.Array) -> jax.Array:
  valid = valid.astype(jnp.float32)
  return jnp.sum(values * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def sentence_mse(
  student: jax.Array,
  student_mask: jax.Array,
  teacher: jax.Array,
  teacher_mask: jax.Array,
  pooling: str = "mean",
) -> Tuple[jax.Array, Dict]:
  """student [B, m, d], teacher [B, n, d], masks [B, m], [B, n] -> (loss [], metrics).

  Loss: mean over valid pairs of ``mean_k (pool(S)_k - pool(T)_k)^2``.
  """
  s = pool(student, student_mask, pooling)
  t = jax.lax.stop_gradient(pool(teacher, teacher_mask, pooling))
  per_pair = jnp.mean(jnp.square(s - t), axis=-1)
  valid = jnp.any(student_mask > 0, -1) & jnp.any(teacher_mask > 0, -1)
  loss = _pair_mean(per_pair, valid)
  return loss, {"mse": loss, "valid_pairs": jnp.sum(valid.astype(jnp.float32))}


def sentence_contrastive(
  student: jax.Array,
  student_mask: jax.Array,
  teacher: jax.Array,
  teacher_mask: jax.Array,
  temperature: float,
  pooling: str = "mean",
) -> Tuple[jax.Array, Dict]:
  """student [B, m, d], teacher [B, n, d], masks [B, m], [B, n] -> (loss [], metrics).

  Loss: mean over valid pairs i of ``-log softmax_j(cos(s_i, t_j) / temperature)[i]``, j over
  the valid pairs of the batch (``s``: pooled student states, ``t``: pooled teacher states, no
  gradient). Metric ``in_batch_top1``: the share of valid pairs whose own teacher sentence
  scores highest.
  """
  s = l2_normalize(pool(student, student_mask, pooling).astype(jnp.float32))
  t = l2_normalize(jax.lax.stop_gradient(pool(teacher, teacher_mask, pooling)).astype(jnp.float32))
  valid = jnp.any(student_mask > 0, -1) & jnp.any(teacher_mask > 0, -1)
  logits = jnp.where(valid[None, :], s @ t.T / temperature, -jnp.inf)  # [B, B]
  logp = jax.nn.log_softmax(logits, axis=-1)
  own = jnp.diagonal(logp)
  loss = _pair_mean(jnp.where(valid, -own, 0.0), valid)
  top1 = _pair_mean(jnp.argmax(logits, -1) == jnp.arange(logits.shape[0]), valid)
  return loss, {"contrastive": loss, "in_batch_top1": top1}


def bank_contrastive(
  student: jax.Array,
  student_mask: jax.Array,
  bank: jax.Array,
  index: jax.Array,
  temperature: float,
  pooling: str = "mean",
  soft: float = 0.0,
) -> Tuple[jax.Array, Dict]:
  """student [B, m, d], student_mask [B, m], bank [N, d] (unit rows), index [B] int32 (-1 = a
  filler row) -> (loss [], metrics).

  Loss: mean over valid rows i of the cross-entropy ``-sum_j y_ij log softmax_j(cos(s_i,
  bank_j) / temperature)``, j over the whole bank (``s``: pooled student states), with target
  ``y_i = (1 - soft) onehot(index_i) + soft softmax_j(cos(bank_index_i, bank_j) /
  temperature)``: ``soft = 0`` is InfoNCE; ``soft > 0`` mixes in the teacher's own
  distribution of its English sentence over the bank (relational KD: near-paraphrases of the
  translation are not pushed away as hard as unrelated sentences). Metric ``bank_top1``: the
  share of valid rows whose own English sentence scores highest among all N.
  """
  s = l2_normalize(pool(student, student_mask, pooling).astype(jnp.float32))
  bank = jax.lax.stop_gradient(bank.astype(jnp.float32))
  valid = jnp.any(student_mask > 0, -1) & (index >= 0)
  logits = s @ bank.T / temperature  # [B, N]
  row = jnp.maximum(index, 0)
  own = jnp.take_along_axis(logits, row[:, None], axis=-1)[:, 0]
  if soft:
    target = jax.nn.softmax(bank[row] @ bank.T / temperature, axis=-1)  # [B, N], no gradient
    own = (1.0 - soft) * own + soft * jnp.sum(target * logits, -1)
  loss = _pair_mean(jnp.where(valid, jax.nn.logsumexp(logits, -1) - own, 0.0), valid)
  top1 = _pair_mean(jnp.argmax(logits, -1) == index, valid)
  return loss, {"contrastive": loss, "bank_top1": top1}


#: Documents scored at a time by :func:`maxsim_mean_scores` (bounds its intermediate:
#: B x m x this x L x 4 bytes, recomputed in the backward pass).
MAXSIM_CHUNK = 256


def maxsim_mean_scores(
  q: jax.Array, q_mask: jax.Array, d: jax.Array, d_mask: jax.Array, chunk: int = MAXSIM_CHUNK
) -> jax.Array:
  """q [B, m, p], q_mask [B, m], d [N, L, p], d_mask [N, L] -> scores [B, N] float32.

  ``scores[b, n] = (1 / |q_b|) sum_{i in q_b} max_{j in d_n} <q_bi, d_nj>``: late interaction
  (``models/scoring.py: maxsim_scores`` divided by the query's real tokens, so that a
  temperature reads on one cosine scale for every query length; a query's ranking is the
  same). The documents go ``chunk`` at a time under ``lax.map`` with each chunk checkpointed,
  so neither pass holds more than ``[B, m, chunk, L]``. A document without tokens scores 0,
  a query without tokens 0 everywhere."""
  q = q.astype(jnp.float32)
  n = d.shape[0]
  c = max(1, min(chunk, n))
  pad = (-n) % c
  d = jnp.pad(d.astype(jnp.float32), ((0, pad), (0, 0), (0, 0)))
  d_mask = jnp.pad(d_mask.astype(bool), ((0, pad), (0, 0)))
  d = d.reshape(-1, c, *d.shape[1:])
  d_mask = d_mask.reshape(-1, c, d_mask.shape[-1])
  qm = q_mask.astype(bool)

  @jax.checkpoint
  def block(args):
    db, mb = args  # [c, L, p], [c, L]
    sim = jnp.einsum("bip,njp->bnij", q, db)
    best = jnp.max(jnp.where(mb[None, :, None, :], sim, -jnp.inf), -1)  # [B, c, m]
    keep = qm[:, None, :] & jnp.any(mb, -1)[None, :, None]
    return jnp.sum(jnp.where(keep, best, 0.0), -1)  # [B, c]

  scores = jax.lax.map(block, (d, d_mask))  # [chunks, B, c]
  scores = jnp.moveaxis(scores, 0, 1).reshape(q.shape[0], -1)[:, :n]
  return scores / jnp.maximum(jnp.sum(qm, -1, keepdims=True), 1).astype(jnp.float32)


def maxsim_contrastive(
  student: jax.Array,
  student_mask: jax.Array,
  docs: jax.Array,
  docs_mask: jax.Array,
  index: jax.Array,
  temperature: float,
  exclude: Optional[jax.Array] = None,
) -> Tuple[jax.Array, Dict]:
  """student [B, m, p] unit token vectors (zeros at padding), student_mask [B, m]; docs
  [N, L, p] the teacher's unit token vectors of the English sentences, docs_mask [N, L];
  index [B] int32: each row's own English sentence among the N (-1 = a filler row); exclude
  [B, N] bool (optional): columns that are no negative of a row (another copy of its own
  sentence among sampled ones) -> (loss [], metrics).

  Loss: mean over valid rows i of ``logsumexp_j(s_ij / temperature) - s_i,index_i /
  temperature`` with ``s`` :func:`maxsim_mean_scores` (InfoNCE over late-interaction scores;
  no gradient into the documents). Metric ``maxsim_top1``: the share of valid rows whose own
  English sentence scores highest."""
  docs = jax.lax.stop_gradient(docs)
  valid = jnp.any(student_mask > 0, -1) & (index >= 0)
  logits = maxsim_mean_scores(student, student_mask, docs, docs_mask) / temperature  # [B, N]
  if exclude is not None:
    logits = jnp.where(exclude, -jnp.inf, logits)
  row = jnp.maximum(index, 0)
  own = jnp.take_along_axis(logits, row[:, None], axis=-1)[:, 0]
  loss = _pair_mean(jnp.where(valid, jax.nn.logsumexp(logits, -1) - own, 0.0), valid)
  top1 = _pair_mean(jnp.argmax(logits, -1) == index, valid)
  return loss, {"contrastive": loss, "maxsim_top1": top1}


def sampled_bank(docs, docs_mask, index, count: int, rng, neighbors=None):
  """The batch's own bank rows, then (with ``neighbors`` [N, k] int32) each row's k nearest
  bank sentences, then ``count`` rows drawn uniformly (with replacement) from the bank, for
  :func:`maxsim_contrastive` -> ``(docs [B + B k + K, L, p], mask, index [B] (row b's positive is
  column b; -1 kept), exclude [B, B + B k + K])``: a column holding row b's own sentence other
  than column b is no negative of b. ``rng`` None = key 0."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  neg = jax.random.randint(jax.random.fold_in(rng, 7), (count,), 0, docs.shape[0])
  own = jnp.maximum(index, 0)
  hard = [] if neighbors is None else [neighbors[own].reshape(-1)]
  rows = jnp.concatenate([own, *hard, neg])
  b = index.shape[0]
  col = jnp.arange(rows.shape[0])[None, :]
  exclude = (rows[None, :] == own[:, None]) & (col != jnp.arange(b)[:, None])
  return docs[rows], docs_mask[rows], jnp.where(index >= 0, jnp.arange(b), -1), exclude


def reverse_contrastive(
  scores: jax.Array, valid: jax.Array, temperature: float, index: Optional[jax.Array] = None
) -> Tuple[jax.Array, Dict]:
  """scores [B, B]: English sentence i (the teacher's) against the student's foreign sentence j
  of the batch, pooled cosine or :func:`maxsim_mean_scores`; valid [B] the pairs with tokens on
  both sides; index [B] int32: each pair's English sentence (equal for repeated ones; None = all
  distinct) -> (loss [], metrics).

  Loss: mean over valid rows i of ``-log softmax_j(scores_ij / temperature)[i]``, j over the
  valid foreign sentences other than those of the same English sentence (a repeated sentence's
  other translation is not its negative). Metric ``reverse_top1``: the share of valid rows whose
  own foreign sentence scores highest."""
  n = scores.shape[0]
  keep = valid[None, :]
  if index is not None:
    keep = keep & ((index[:, None] != index[None, :]) | jnp.eye(n, dtype=bool))
  logits = jnp.where(keep, scores.astype(jnp.float32) / temperature, -jnp.inf)
  own = jnp.diagonal(logits)
  loss = _pair_mean(jnp.where(valid, jax.nn.logsumexp(logits, -1) - own, 0.0), valid)
  top1 = _pair_mean(jnp.argmax(logits, -1) == jnp.arange(n), valid)
  return loss, {"reverse_contrastive": loss, "reverse_top1": top1}


def greedy_alignment(sim: jax.Array, row_mask: jax.Array, col_mask: jax.Array) -> jax.Array:
  """Greedy one-to-one matching. sim [m, n], masks [m], [n] -> match [m] int32.

  ``match[i]`` is the teacher index aligned to student token i, or -1. Runs
  ``min(m, n)`` rounds, each taking the global maximum among unmatched rows
  and columns (ties: lowest flat index).
  """
  m, n = sim.shape
  neg = jnp.asarray(-jnp.inf, sim.dtype)
  sim = jnp.where(row_mask[:, None].astype(bool) & col_mask[None, :].astype(bool), sim, neg)

  def body(_, state):
    s, match = state
    flat = jnp.argmax(s)
    i, j = flat // n, flat % n
    ok = s[i, j] > neg
    match = match.at[i].set(jnp.where(ok, j, match[i]))
    s = jnp.where(ok, s.at[i, :].set(neg).at[:, j].set(neg), s)
    return s, match

  _, match = jax.lax.fori_loop(0, min(m, n), body, (sim, jnp.full((m,), -1, jnp.int32)))
  return match


def token_mse_greedy(
  student: jax.Array, student_mask: jax.Array, teacher: jax.Array, teacher_mask: jax.Array
) -> Tuple[jax.Array, Dict]:
  """student [B, m, d], teacher [B, n, d], masks -> (loss [], metrics).

  Loss: per pair, the mean over aligned student tokens of
  ``mean_k (S_i,k - T_match(i),k)^2``; then the mean over valid pairs.
  """
  teacher = jax.lax.stop_gradient(teacher)
  sim = jax.lax.stop_gradient(1.0 - cosine_cost(student, teacher))
  match = jax.vmap(greedy_alignment)(sim, student_mask, teacher_mask)  # [B, m]
  aligned = match >= 0
  target = jnp.take_along_axis(teacher, jnp.maximum(match, 0)[..., None], axis=1)  # [B, m, d]
  err = jnp.mean(jnp.square(student.astype(jnp.float32) - target.astype(jnp.float32)), -1)
  count = jnp.sum(aligned, -1)
  per_pair = jnp.sum(jnp.where(aligned, err, 0.0), -1) / jnp.maximum(count, 1)
  valid = count > 0
  loss = _pair_mean(per_pair, valid)
  return loss, {
    "mse": loss,
    "aligned_tokens": _pair_mean(count.astype(jnp.float32), valid),
    "valid_pairs": jnp.sum(valid.astype(jnp.float32)),
  }
