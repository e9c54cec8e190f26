"""Token plans: where the real tokens of each training batch go, for unpadded dense layers.

The host side of :mod:`optical_jax.models.unpad` (which explains the layout);
pure NumPy, so data code and the benchmarks' PyTorch processes stay free of JAX.

A batcher that supports unpadding offers two views of its batches:

* ``row_lengths(step) -> (key, {side: real tokens per row})``: batch ``step``
  without building it; ``key`` names its padded shape (the length bucket);
* ``padded_shape(key, side) -> (rows, T)``.

:func:`plan_tokens` walks every step of the run once through the first and
fixes, per (key, side), the slots per shard ``N``: the fullest shard of the
run, rounded up. The batcher then adds ``<side>_token_index [S, N]`` to each
batch (:meth:`TokenPlan.add_to`). Batchers get both steps from
:class:`PlannedBatches`. Because ``N`` is fixed per bucket, a bucket
still compiles once; because it is the fullest shard of the run, no batch
overflows it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Hashable, Optional, Tuple

import numpy as np


def shard_counts(mask_or_lengths: np.ndarray, shards: int) -> np.ndarray:
  """Real tokens per shard: ``[B, T]`` mask or ``[B]`` row lengths -> ``[S]`` int."""
  lengths = np.asarray(mask_or_lengths)
  if lengths.ndim == 2:
    lengths = (lengths > 0).sum(1)
  if lengths.shape[0] % shards:
    raise ValueError(f"{lengths.shape[0]} rows do not split into {shards} shards")
  return lengths.reshape(shards, -1).sum(1)


def token_index(mask: np.ndarray, shards: int, capacity: int) -> np.ndarray:
  """``mask [B, T]`` -> ``token_index [S, capacity] int32`` (module docstring).

  Raises ``ValueError`` if a shard holds more than ``capacity`` real tokens.
  """
  mask = np.asarray(mask)
  b, t = mask.shape
  if b % shards:
    raise ValueError(f"batch of {b} rows does not split into {shards} shards")
  real = mask.reshape(shards, (b // shards) * t) > 0
  out = np.full((shards, capacity), -1, np.int32)
  for s in range(shards):
    pos = np.flatnonzero(real[s])
    if len(pos) > capacity:
      raise ValueError(
        f"shard {s} holds {len(pos)} real tokens, more than the planned capacity of {capacity}"
      )
    out[s, : len(pos)] = pos
  return out


def round_capacity(count: int, multiple: int, limit: int) -> int:
  """``count`` rounded up to ``multiple`` (at least one multiple), at most ``limit``."""
  return int(min(max(multiple, math.ceil(count / multiple) * multiple), limit))


@dataclasses.dataclass(frozen=True)
class TokenPlan:
  """Slots per shard for every (shape key, side) of a run (see :func:`plan_tokens`).

  Attributes:
    shards: ``S``.
    capacity: ``{(key, side): N}``.
    positions: ``{(key, side): P}``, a shard's padded positions, for reporting.
    real_max: ``{(key, side): most real tokens of one shard}``, for reporting.
  """

  shards: int
  capacity: Dict[Tuple[Hashable, str], int]
  positions: Dict[Tuple[Hashable, str], int]
  real_max: Dict[Tuple[Hashable, str], int]

  def add_to(self, batch: Dict[str, np.ndarray], key: Hashable) -> Dict[str, np.ndarray]:
    """``batch`` plus ``<side>_token_index [S, N]`` for every side planned under ``key``
    (built from ``batch["<side>_mask"]``)."""
    out = dict(batch)
    for (k, side), n in self.capacity.items():
      if k == key:
        out[f"{side}_token_index"] = token_index(batch[f"{side}_mask"], self.shards, n)
    return out

  def describe(self) -> str:
    """One line per (key, side): slots against padded positions."""
    lines = []
    for (key, side), n in sorted(self.capacity.items()):
      p = self.positions[(key, side)]
      lines.append(f"[{key}] {side} {n} of {p} ({n / p:.0%}, fullest {self.real_max[(key, side)]})")
    return f"slots of {self.shards} shard(s) against padded positions: " + "; ".join(lines)


def plan_tokens(
  row_lengths: Callable[[int], Tuple[Hashable, Dict[str, np.ndarray]]],
  padded_shape: Callable[[Hashable, str], Tuple[int, int]],
  num_steps: int,
  shards: int,
  multiple: int = 16,
) -> TokenPlan:
  """The capacity of every (key, side): the most real tokens any shard of any of the
  ``num_steps`` batches holds, rounded up to ``multiple`` and capped at ``P``.

  Args:
    row_lengths: ``step -> (key, {side: real tokens of each row [rows]})``, the
      batcher's view of batch ``step`` without building it; ``key`` names its
      padded shape (the length bucket).
    padded_shape: ``(key, side) -> (rows, T)`` of that side's padded array.
    num_steps: steps of the run (batches ``0 .. num_steps - 1``).
    shards: ``S``.
    multiple: capacities are multiples of this (matmul-friendly sizes).
  """
  if shards < 1 or multiple < 1:
    raise ValueError(f"shards ({shards}) and multiple ({multiple}) must be >= 1")
  real_max: Dict[Tuple[Hashable, str], int] = {}
  for step in range(num_steps):
    key, sides = row_lengths(step)
    for side, lengths in sides.items():
      most = int(shard_counts(lengths, shards).max())
      real_max[(key, side)] = max(real_max.get((key, side), 0), most)
  capacity, positions = {}, {}
  for (key, side), most in real_max.items():
    rows, t = padded_shape(key, side)
    if rows % shards:
      raise ValueError(f"{side}: {rows} rows do not split into {shards} shards")
    positions[(key, side)] = rows // shards * t
    capacity[(key, side)] = round_capacity(most, multiple, positions[(key, side)])
  return TokenPlan(shards, capacity, positions, real_max)


class PlannedBatches:
  """What a batcher with ``row_lengths`` and ``padded_shape`` (module docstring) inherits for
  unpadded training: :meth:`plan_unpadded`, then :meth:`with_token_index` on each batch."""

  token_plan: Optional[TokenPlan] = None

  def plan_unpadded(self, num_steps: int, shards: int, multiple: int = 16) -> TokenPlan:
    """From now on every batch carries ``<side>_token_index [shards, N]``, with ``N`` per
    key (bucket) and side the fullest shard of batches ``0 .. num_steps - 1`` (rounded up to
    ``multiple``). Returns the plan (its ``describe()`` is worth logging)."""
    self.token_plan = plan_tokens(self.row_lengths, self.padded_shape, num_steps, shards, multiple)
    return self.token_plan

  def with_token_index(self, batch: Dict[str, np.ndarray], key: Hashable) -> Dict[str, np.ndarray]:
    """``batch`` (of shape key ``key``) plus its token indexes once planned, else as it is."""
    return self.token_plan.add_to(batch, key) if self.token_plan is not None else batch
