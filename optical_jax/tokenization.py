"""Tokenisation to fixed, bucketed shapes for XLA.

:class:`Tokenizer` wraps a fast ``tokenizers.Tokenizer`` (the same object HF
ships as ``tokenizer.json``). Batches are padded to a small set of lengths
(powers of two from 8 up to ``max_length``) so a jitted function compiles a
handful of times, not once per batch. Truncation keeps the special tokens and
is counted, never silent.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tokenizers

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TokenBatch:
  """``input_ids [B, T] int32``, ``attention_mask [B, T] int32`` (1 = real),
  ``lengths [B] int32`` (real tokens, specials included), ``num_truncated``."""

  input_ids: np.ndarray
  attention_mask: np.ndarray
  lengths: np.ndarray
  num_truncated: int


def bucket_length(n: int, max_length: int, minimum: int = 8) -> int:
  """Smallest power of two >= n (at least ``minimum``), capped at ``max_length``."""
  b = minimum
  while b < n:
    b *= 2
  return min(b, max_length)


class Tokenizer:
  """A fast tokenizer with padding id and length limit.

  Args:
    backend: a ``tokenizers.Tokenizer`` whose post-processor adds the
      model's special tokens (``[CLS] .. [SEP]`` or ``<s> .. </s>``).
    pad_id: id used for padding.
    max_length: longest sequence, specials included (the model's limit).
    source: where it came from, for messages.
  """

  def __init__(self, backend: tokenizers.Tokenizer, pad_id: int, max_length: int, source: str = ""):
    self.backend = backend
    self.pad_id = int(pad_id)
    self.max_length = int(max_length)
    self.source = source
    self.backend.no_padding()
    self.backend.no_truncation()

  @property
  def vocab_size(self) -> int:
    return self.backend.get_vocab_size(with_added_tokens=True)

  def max_token_id(self) -> int:
    vocab = self.backend.get_vocab(with_added_tokens=True)
    return max(vocab.values()) if vocab else -1

  def special_ids(self) -> set:
    """Ids the post-processor adds around every text (e.g. ``[CLS]``/``[SEP]``), plus padding."""
    enc = self.backend.encode("")
    return {i for i, sp in zip(enc.ids, enc.special_tokens_mask) if sp} | {self.pad_id}

  def decode(self, ids) -> str:
    """Text of ``ids`` without the special tokens and padding (inverse of :meth:`ids`
    up to the tokenizer's normalisation)."""
    drop = self.special_ids()
    return self.backend.decode(
      [int(i) for i in ids if int(i) not in drop], skip_special_tokens=True
    )

  def ids(self, text: str) -> list:
    """Token ids of one text, specials included, untruncated."""
    return self.backend.encode(text).ids

  def encode_ids(
    self, texts: Sequence[str], max_length: Optional[int] = None, prefix: str = ""
  ) -> Tuple[List[List[int]], int]:
    """Token ids of each text (``prefix`` prepended, specials included), truncated to
    ``max_length`` (default and cap: the model's). Returns ``(ids, num_truncated)``;
    truncation is logged, never silent."""
    limit = min(max_length or self.max_length, self.max_length)
    encs = self.backend.encode_batch([prefix + t for t in texts])
    specials = self.backend.num_special_tokens_to_add(False)
    rows, truncated = [], 0
    for enc in encs:
      ids = enc.ids
      if len(ids) > limit:
        truncated += 1
        ids = truncate_ids(ids, limit, specials)
      rows.append(ids)
    if truncated:
      log.warning(
        "%d of %d texts longer than %d tokens were truncated", truncated, len(texts), limit
      )
    return rows, truncated

  def __call__(
    self,
    texts: Sequence[str],
    max_length: Optional[int] = None,
    prefix: str = "",
    pad_to: Optional[int] = None,
  ) -> TokenBatch:
    """Tokenises ``texts`` (each prefixed with ``prefix``) into one padded batch.

    Texts longer than ``max_length`` are truncated (specials kept), counted in
    ``num_truncated`` and logged. Padding goes to ``pad_to`` if given, else to
    :func:`bucket_length` of the longest text.
    """
    limit = min(max_length or self.max_length, self.max_length)
    rows, truncated = self.encode_ids(texts, limit, prefix)
    longest = max((len(r) for r in rows), default=1)
    width = pad_to or bucket_length(longest, limit)
    ids = np.full((len(rows), width), self.pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
      ids[i, : len(r)] = r
      mask[i, : len(r)] = 1
    return TokenBatch(ids, mask, np.asarray([len(r) for r in rows], np.int32), truncated)


def truncate_ids(ids: list, limit: int, specials: int) -> list:
  """Cuts the body of a single-sequence encoding to ``limit``, keeping the trailing
  special token when the tokenizer adds two (``[CLS] .. [SEP]``, ``<s> .. </s>``).
  Works on any per-token list (ids, special-token masks)."""
  if specials >= 2:  # [CLS] body [SEP]
    return ids[: limit - 1] + ids[-1:]
  return ids[:limit]
