"""Bitext -> fixed-shape training batches, deterministic from the step number.

Each side of a pair is tokenised by its own model's tokenizer (the student
reads the foreign sentence, the teacher the English one). Pairs are grouped
into length buckets (by the longer side) and every batch comes from one
bucket and is padded to that bucket's length, so XLA compiles one program per
bucket rather than one per batch. An epoch's batch order is a seeded
permutation, so batch ``k`` is a pure function of ``(seed, k)``: resuming from a
checkpoint at step ``k`` needs no iterator state. The last, partial batch of a
bucket is filled with empty rows (all-zero masks), which every loss leaves out
of its mean, so no pair is ever dropped.

With a token plan (:meth:`BitextBatcher.plan_unpadded`, ``config.train.unpad``)
each batch also carries ``student_token_index`` / ``teacher_token_index``
``[S, N]``: where its real tokens are, so the encoder's dense layers skip the
padding (``optical_jax/models/unpad.py``). ``N`` is fixed per bucket for the
whole run (the fullest shard of any of its batches), so a bucket still
compiles once.

Token weights (the OT marginals) are 1 for real tokens (``"uniform"``) or
smoothed IDF over the training side (``"idf"``: ``log((N + 1) / (df + 1)) + 1``).
Special tokens ([CLS]/[SEP], <s>/</s>) get weight 0 unless
``include_special_tokens``; they always stay in the attention mask.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from optical_jax.data import token_plan
from optical_jax.tokenization import Tokenizer, truncate_ids

log = logging.getLogger(__name__)

WEIGHTINGS = ("uniform", "idf")


@dataclasses.dataclass
class _Side:
  ids: List[List[int]]
  special: List[List[int]]


def _tokenize(
  tok: Tokenizer, texts: Sequence[str], max_length: int, prefix: str
) -> Tuple[_Side, int]:
  encs = tok.backend.encode_batch([prefix + t for t in texts])
  specials = tok.backend.num_special_tokens_to_add(False)
  ids, special, truncated = [], [], 0
  for e in encs:
    i, s = list(e.ids), list(e.special_tokens_mask)
    if len(i) > max_length:
      truncated += 1
      i = truncate_ids(i, max_length, specials)
      s = truncate_ids(s, max_length, specials)
    ids.append(i)
    special.append(s)
  return _Side(ids, special), truncated


def idf_table(side: _Side, vocab_size: int) -> np.ndarray:
  """Smoothed IDF per token id over the sentences of one side. -> [vocab] float32."""
  df = np.zeros(vocab_size, np.int64)
  for ids in side.ids:
    df[np.unique(np.asarray(ids, np.int64))] += 1
  n = len(side.ids)
  return (np.log((n + 1) / (df + 1)) + 1.0).astype(np.float32)


class BitextBatcher(token_plan.PlannedBatches):
  """Deterministic, bucketed batches of tokenised bitext.

  Args:
    pairs: sequence of (english, foreign) strings.
    student_tokenizer: tokenises the foreign side.
    teacher_tokenizer: tokenises the English side.
    batch_size: pairs per (global) batch.
    max_length: token limit per side (longer texts are truncated and counted).
    buckets: padded lengths to group by (ascending; the last must be >= max_length
      or texts are cut to it).
    seed: shuffling seed.
    weighting: ``"uniform"`` or ``"idf"`` token weights.
    include_special_tokens: give special tokens weight too.
    student_prefix / teacher_prefix: text prepended (e.g. ``"query: "`` for E5).
    bank_index: optional int [len(pairs)]: each pair's row in an English bank; batches then
      carry it as ``bank_index`` [B] int32 (-1 for filler rows).
  """

  def __init__(
    self,
    pairs: Sequence[Tuple[str, str]],
    student_tokenizer: Tokenizer,
    teacher_tokenizer: Tokenizer,
    batch_size: int,
    max_length: int = 128,
    buckets: Sequence[int] = (16, 32, 64, 128),
    seed: int = 0,
    weighting: str = "uniform",
    include_special_tokens: bool = False,
    student_prefix: str = "",
    teacher_prefix: str = "",
    bank_index: Optional[Sequence[int]] = None,
  ):
    if not pairs:
      raise ValueError("no bitext pairs to train on")
    if weighting not in WEIGHTINGS:
      raise ValueError(f"weighting {weighting!r} not in {WEIGHTINGS}")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.batch_size, self.seed = batch_size, seed
    self.bank_index = None
    if bank_index is not None:
      self.bank_index = np.asarray(bank_index, np.int32)
      if self.bank_index.shape != (len(pairs),):
        raise ValueError(
          f"bank_index has shape {self.bank_index.shape}; expected "
          f"({len(pairs)},), one row per pair"
        )
    self.weighting, self.include_special = weighting, include_special_tokens
    max_length = min(max_length, student_tokenizer.max_length, teacher_tokenizer.max_length)
    self.buckets = sorted({min(b, max_length) for b in buckets} | {max_length})
    self.buckets = [b for b in self.buckets if b <= max_length]
    self.teacher, t_trunc = _tokenize(
      teacher_tokenizer, [e for e, _ in pairs], max_length, teacher_prefix
    )
    self.student, s_trunc = _tokenize(
      student_tokenizer, [f for _, f in pairs], max_length, student_prefix
    )
    self.num_truncated = {"teacher": t_trunc, "student": s_trunc}
    if t_trunc or s_trunc:
      log.warning(
        "truncated to %d tokens: %d English and %d foreign texts", max_length, t_trunc, s_trunc
      )
    self.pad = {"student": student_tokenizer.pad_id, "teacher": teacher_tokenizer.pad_id}
    self.idf = None
    if weighting == "idf":
      self.idf = {
        "student": idf_table(self.student, student_tokenizer.max_token_id() + 1),
        "teacher": idf_table(self.teacher, teacher_tokenizer.max_token_id() + 1),
      }
    self.lengths = {
      name: np.asarray([len(i) for i in side.ids], np.int64)
      for name, side in (("student", self.student), ("teacher", self.teacher))
    }
    lengths = np.maximum(self.lengths["student"], self.lengths["teacher"])
    self._bucket_of = np.asarray(
      [next(i for i, b in enumerate(self.buckets) if n <= b) for n in lengths]
    )
    self._members = [np.flatnonzero(self._bucket_of == i) for i in range(len(self.buckets))]
    self.steps_per_epoch = sum(math.ceil(len(m) / batch_size) for m in self._members)
    self._epoch_cache: Dict[int, List[Tuple[int, np.ndarray]]] = {}

  def __len__(self) -> int:
    return len(self.student.ids)

  def _epoch(self, epoch: int) -> List[Tuple[int, np.ndarray]]:
    if epoch not in self._epoch_cache:
      rng = np.random.default_rng([self.seed, epoch])
      batches = []
      for b, members in enumerate(self._members):
        order = rng.permutation(members)
        batches += [
          (b, order[i : i + self.batch_size]) for i in range(0, len(order), self.batch_size)
        ]
      perm = rng.permutation(len(batches))
      self._epoch_cache = {epoch: [batches[i] for i in perm]}
    return self._epoch_cache[epoch]

  def members(self, step: int) -> Tuple[int, np.ndarray]:
    """``(bucket index, pair indices)`` of batch ``step`` (up to ``batch_size`` pairs)."""
    epoch, k = divmod(step, self.steps_per_epoch)
    return self._epoch(epoch)[k]

  def row_lengths(self, step: int) -> Tuple[int, Dict[str, np.ndarray]]:
    """``(bucket length, {side: real tokens per row [B]})`` of batch ``step``, without
    building it (filler rows count 0)."""
    bucket, idx = self.members(step)
    out = {}
    for name, lengths in self.lengths.items():
      out[name] = np.zeros(self.batch_size, np.int64)
      out[name][: len(idx)] = lengths[idx]
    return self.buckets[bucket], out

  def padded_shape(self, width: int, side: str) -> Tuple[int, int]:
    """``(rows, length)`` of a side's arrays in batches of the bucket of length ``width``."""
    del side
    return self.batch_size, width

  def batch(self, step: int) -> Dict[str, np.ndarray]:
    """The batch for global step ``step`` (0-based).

    Returns int32 ``{student,teacher}_ids [B, L]``, ``{student,teacher}_mask
    [B, L]`` (attention) and float32 ``{student,teacher}_weights [B, L]`` (OT
    marginals before normalisation), with ``L`` the bucket length; after
    :meth:`plan_unpadded` also int32 ``{student,teacher}_token_index [S, N]``; with a
    ``bank_index``, int32 ``bank_index [B]``.
    """
    bucket, idx = self.members(step)
    width = self.buckets[bucket]
    out = {}
    for name, side in (("student", self.student), ("teacher", self.teacher)):
      ids = np.full((self.batch_size, width), self.pad[name], np.int32)
      mask = np.zeros((self.batch_size, width), np.int32)
      weights = np.zeros((self.batch_size, width), np.float32)
      for row, i in enumerate(idx):
        toks = side.ids[i]
        ids[row, : len(toks)] = toks
        mask[row, : len(toks)] = 1
        w = self.idf[name][toks] if self.idf is not None else np.ones(len(toks), np.float32)
        if not self.include_special:
          w = np.where(np.asarray(side.special[i]) == 1, 0.0, w)
        weights[row, : len(toks)] = w
      out[f"{name}_ids"], out[f"{name}_mask"], out[f"{name}_weights"] = ids, mask, weights
    if self.bank_index is not None:
      out["bank_index"] = np.full(self.batch_size, -1, np.int32)
      out["bank_index"][: len(idx)] = self.bank_index[idx]
    return self.with_token_index(out, width)
