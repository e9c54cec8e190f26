"""Sequence packing: several texts per row, so encoding computes (almost) no padding.

A padded batch of texts of very different lengths spends most of its compute
on padding (``docs/PERFORMANCE.md`` measures it for TICO-19). Packing places texts end to end in rows of a few fixed lengths
(64, 128, 256, 512 ... up to the model's limit), best-fit
decreasing, and the encoder keeps them apart with ``segment_ids``
(block-diagonal attention, positions restarting per text; see
``models/encoder.py``). Each text's states are those it gets alone.

Shapes stay few, so XLA compiles a handful of programs: every batch of one
row length has the same number of rows (the last one is filled with empty
rows; under a fifth of a batch).

Pure NumPy; the encoder side is ``optical_jax/encode.py``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Iterator, List, Sequence

import numpy as np

#: Shortest row: texts shorter than this share rows of this length.
MIN_ROW_LENGTH = 64
#: Default token positions per forward pass, per text of the caller's ``batch_size``:
#: ``batch_size=64`` gives 2,048. On 2 CPU cores, encoding 1,024 TICO-19 sentences with e5 took
#: 9.3 s with rows of 64 and 2,048 positions, 11.9 s with rows of 128 and 8,192 (caches favour
#: small passes); accelerators want larger ones (``tokens_per_batch``).
TOKENS_PER_TEXT = 32
#: Most texts one row may hold (the pooled output is ``[rows, MAX_SEGMENTS, d]``).
MAX_SEGMENTS = 32


@dataclasses.dataclass
class PackedBatch:
  """One forward pass of packed rows.

  Attributes:
    input_ids: ``[R, L] int32``, padding id after the last text of a row.
    attention_mask: ``[R, L] int32``, 1 on real tokens.
    segment_ids: ``[R, L] int32``, 0 on padding, ``k`` on the k-th text of the row.
    text_index: ``[n] int64``, which input texts this batch holds.
    row, segment: ``[n]``: where each of them is (``segment`` 1-based).
    start, length: ``[n]``: its first column and token count in the row.
  """

  input_ids: np.ndarray
  attention_mask: np.ndarray
  segment_ids: np.ndarray
  text_index: np.ndarray
  row: np.ndarray
  segment: np.ndarray
  start: np.ndarray
  length: np.ndarray

  @property
  def real_tokens(self) -> int:
    return int(self.length.sum())


def row_length_for(n: int, max_length: int, minimum: int = MIN_ROW_LENGTH) -> int:
  """The row length a text of ``n`` tokens opens: a power of two >= n, at least
  ``minimum``, at most ``max_length``."""
  r = minimum
  while r < n:
    r *= 2
  return min(r, max(max_length, n))


def plan_rows(
  lengths: Sequence[int],
  max_length: int,
  min_row: int = MIN_ROW_LENGTH,
  max_segments: int = MAX_SEGMENTS,
) -> List[tuple]:
  """Best-fit decreasing: ``[(row_length, [text indices in order]), ...]``.

  Texts go longest first into the open row whose free space fits them most
  tightly; a text that fits nowhere opens a row of :func:`row_length_for`.
  Every text is placed exactly once (an empty text, length 0, takes no
  columns but still gets a segment, so it pools to zeros like the padded path).
  """
  if max_segments < 1:
    raise ValueError(f"max_segments must be >= 1, got {max_segments}")
  rows: List[tuple] = []
  free: List[tuple] = []  # sorted (remaining columns, row id) of rows with room for a segment
  for i in np.argsort(-np.asarray(lengths, np.int64), kind="stable"):
    n = int(lengths[i])
    k = bisect.bisect_left(free, (n, -1))
    if k < len(free):
      remaining, r = free.pop(k)
    else:
      r = len(rows)
      rows.append((row_length_for(max(n, 1), max_length, min_row), []))
      remaining = rows[r][0]
    rows[r][1].append(int(i))
    remaining -= n
    if len(rows[r][1]) < max_segments:
      bisect.insort(free, (remaining, r))
  return rows


def round_rows(n: int) -> int:
  """``n`` rounded up to a multiple of a quarter of the largest power of two <= n
  (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ..., 32, 40, 48, 56, 64, 80, ...): under
  a fifth of a batch is empty rows, and repeated calls reuse four shapes per octave."""
  if n <= 1:
    return 1
  step = max(1, (1 << (n.bit_length() - 1)) // 4)
  return -(-n // step) * step


def pack_batches(
  ids: Sequence[Sequence[int]],
  pad_id: int,
  max_length: int,
  tokens_per_batch: int,
  min_row: int = MIN_ROW_LENGTH,
  max_segments: int = MAX_SEGMENTS,
) -> Iterator[PackedBatch]:
  """Packs token-id lists (already truncated to ``max_length``) into batches.

  Rows of one length are grouped into batches of ``rows`` rows with
  ``rows * row_length <= tokens_per_batch`` (at least one row), spread
  evenly over the fewest batches and rounded up by :func:`round_rows`.
  Yields :class:`PackedBatch` es, longest rows first.
  """
  if tokens_per_batch < 1:
    raise ValueError(f"tokens_per_batch must be >= 1, got {tokens_per_batch}")
  lengths = [len(x) for x in ids]
  if lengths and max(lengths) > max_length:
    raise ValueError(f"a text has {max(lengths)} tokens, more than max_length={max_length}")
  by_length = {}
  for width, members in plan_rows(lengths, max_length, min_row, max_segments):
    by_length.setdefault(width, []).append(members)
  for width in sorted(by_length, reverse=True):
    rows = by_length[width]
    cap = max(1, tokens_per_batch // width)
    per = min(cap, round_rows(math.ceil(len(rows) / math.ceil(len(rows) / cap))))
    for s in range(0, len(rows), per):
      yield _fill(rows[s : s + per], per, width, ids, pad_id)


def _fill(rows, num_rows: int, width: int, ids, pad_id: int) -> PackedBatch:
  input_ids = np.full((num_rows, width), pad_id, np.int32)
  mask = np.zeros((num_rows, width), np.int32)
  segs = np.zeros((num_rows, width), np.int32)
  index, row_of, seg_of, start_of, len_of = [], [], [], [], []
  for r, members in enumerate(rows):
    col = 0
    for s, i in enumerate(members, 1):
      toks = ids[i]
      n = len(toks)
      input_ids[r, col : col + n] = toks
      mask[r, col : col + n] = 1
      segs[r, col : col + n] = s
      index.append(i)
      row_of.append(r)
      seg_of.append(s)
      start_of.append(col)
      len_of.append(n)
      col += n
  as_array = lambda x: np.asarray(x, np.int64)
  return PackedBatch(
    input_ids,
    mask,
    segs,
    as_array(index),
    as_array(row_of),
    as_array(seg_of),
    as_array(start_of),
    as_array(len_of),
  )
