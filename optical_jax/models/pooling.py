"""Pooling token states into sentence vectors, and NaN-safe normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

POOLINGS = ("mean", "cls")


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over real tokens. hidden [B, T, d], mask [B, T] -> [B, d] float32.

  An all-padding row gives the zero vector (never NaN).
  """
  m = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(hidden.astype(jnp.float32) * m, axis=1)
  return total / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def cls_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """First token's state. hidden [B, T, d] -> [B, d] float32."""
  del mask
  return hidden[:, 0].astype(jnp.float32)


def pool(hidden: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
  if kind == "mean":
    return mean_pool(hidden, mask)
  if kind == "cls":
    return cls_pool(hidden, mask)
  raise ValueError(f"pooling {kind!r} not in {POOLINGS}")


def segment_starts(segment_ids: jax.Array) -> jax.Array:
  """bool [B, T]: where a new segment begins (a token whose segment id differs from the one
  before it; padding runs count as segments too)."""
  prev = jnp.pad(segment_ids[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
  return segment_ids != prev


def pool_segments(
  hidden: jax.Array, segment_ids: jax.Array, num_segments: int, kind: str
) -> jax.Array:
  """Pools each text of packed rows (see ``Encoder``'s ``segment_ids``).

  hidden [B, T, d], segment_ids [B, T] int32 (0 = padding, k = the k-th text
  of the row) -> [B, num_segments, d] float32: row ``s`` holds text ``s + 1``
  (zeros where a row has fewer texts). ``kind`` is ``"mean"`` (over the
  text's tokens) or ``"cls"`` (its first token).
  """
  if kind not in POOLINGS:
    raise ValueError(f"pooling {kind!r} not in {POOLINGS}")
  onehot = (
    segment_ids[:, None, :]
    == jnp.arange(1, num_segments + 1, dtype=segment_ids.dtype)[None, :, None]
  )  # [B, S, T]
  if kind == "cls":
    onehot = onehot & segment_starts(segment_ids)[:, None, :]
  weights = onehot.astype(jnp.float32)
  total = jnp.einsum("bst,btd->bsd", weights, hidden.astype(jnp.float32))
  return total / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1.0)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x|| with a floor on the norm, so zero vectors stay zero (finite grads)."""
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))
