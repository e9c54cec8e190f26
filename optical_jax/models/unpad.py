"""Dense layers on real tokens only: the token layout of a padded batch.

A training batch is padded to its length bucket, and every per-token layer of
the encoder (the query/key/value/output projections, the MLP, LayerNorm, the
residual adds) computes on the padding too (how much, for the benchmarks' batch:
``docs/PERFORMANCE.md``). With a :class:`TokenLayout` the encoder runs those layers on the
real tokens alone, placed end to end in ``N`` slots per shard (an ``[S * N, d]``
array), and only attention on the
padded layout ``[B, T]``, where the usual mask keeps the texts apart. Every
real token's states are those of the padded encoder (tested for both
families, states and gradients); only the work changes.

Shapes:

* ``S``, shards: the batch's rows are split into ``S`` contiguous blocks, one
  per device of the ``(data, fsdp)`` mesh (1 on one device). Shard ``s`` holds
  padded rows ``s*B/S .. (s+1)*B/S - 1`` and its own ``N`` slots, so each gather
  stays on its device (a gather batched over the sharded leading axis).
* ``P = (B / S) * T``: a shard's padded positions, row-major.
* ``N``, slots per shard: a static capacity. The batchers' token plans
  (:func:`optical_jax.data.token_plan.plan_tokens`) set it to the most real
  tokens any shard of any batch of the whole run holds (rounded up to a
  multiple), so one program serves every batch of a length bucket and the step
  compiles no more often than with padding.

``token_index [S, N] int32`` (built on the host by
:func:`optical_jax.data.token_plan.token_index`) lists,
for each shard, the positions in ``[0, P)`` of its real tokens in increasing
order, then ``-1`` in the slots left over.

The two moves between layouts, :func:`to_flat` and :func:`to_padded`, are
gathers with custom VJPs that are gathers too (each is a one-to-one map
between real positions and filled slots). Autodiff would transpose a gather
into a scatter-add, which XLA's CPU backend runs slowly and GPUs run with
atomics, whose order (and so the low bits of the gradient) varies from run to
run.
"""

from __future__ import annotations

from typing import Tuple

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TokenLayout:
  """Where the real tokens of a padded ``[B, T]`` batch sit in ``[S, N]`` slots.

  Attributes:
    flat_index: ``[S, N] int32`` position in ``[0, P)`` of each slot's token (0 for empty slots).
    flat_valid: ``[S, N] bool`` the slot holds a real token.
    pad_index: ``[S, P] int32`` slot of each padded position's token (0 for padding).
    pad_valid: ``[S, P] bool`` the position is a real token.
    padded_shape: ``(B, T)``, static.
  """

  flat_index: jax.Array
  flat_valid: jax.Array
  pad_index: jax.Array
  pad_valid: jax.Array
  padded_shape: Tuple[int, int] = flax.struct.field(pytree_node=False)

  @property
  def shards(self) -> int:
    return self.flat_index.shape[0]

  @property
  def slots(self) -> int:
    return self.flat_index.shape[1]


def make_layout(attention_mask: jax.Array, token_index: jax.Array) -> TokenLayout:
  """The layout of ``attention_mask [B, T]`` (1 = real token) given ``token_index [S, N]``
  (module docstring). Works under ``jit``: every shape is static."""
  b, t = attention_mask.shape
  s = token_index.shape[0]
  if b % s:
    raise ValueError(f"batch of {b} rows does not split into {s} token-index shards")
  real = attention_mask.reshape(s, (b // s) * t) > 0
  pad_index = jnp.maximum(jnp.cumsum(real, axis=1, dtype=jnp.int32) - 1, 0)
  return TokenLayout(
    flat_index=jnp.maximum(token_index, 0).astype(jnp.int32),
    flat_valid=token_index >= 0,
    pad_index=pad_index,
    pad_valid=real,
    padded_shape=(b, t),
  )


def _gather(x: jax.Array, index: jax.Array, valid: jax.Array) -> jax.Array:
  """``x [S, n, ...]``, ``index/valid [S, k]`` -> ``[S, k, ...]``, zeros where not valid."""
  rows = jax.vmap(lambda a, i: jnp.take(a, i, axis=0, mode="clip"))(x, index)
  keep = valid.reshape(valid.shape + (1,) * (x.ndim - 2))
  return jnp.where(keep, rows, jnp.zeros((), x.dtype))


def _one_to_one_gather(forward, backward):
  """A gather along ``forward(layout)`` (index, valid) whose VJP is the gather along
  ``backward(layout)``: right for a one-to-one map between real positions and filled slots."""

  @jax.custom_vjp
  def move(x, layout):
    return _gather(x, *forward(layout))

  move.defvjp(
    lambda x, layout: (move(x, layout), layout),
    lambda layout, g: (_gather(g, *backward(layout)), None),
  )
  return move


_FLAT = lambda layout: (layout.flat_index, layout.flat_valid)
_PADDED = lambda layout: (layout.pad_index, layout.pad_valid)
_flat_from_padded = _one_to_one_gather(_FLAT, _PADDED)
_padded_from_flat = _one_to_one_gather(_PADDED, _FLAT)


def to_flat(x: jax.Array, layout: TokenLayout) -> jax.Array:
  """``[B, T, ...]`` -> ``[S * N, ...]``: the real tokens in their slots (shard-major),
  zeros in empty slots.

  The slots come merged into one leading axis, still split over devices in ``S``
  blocks: XLA's CPU backend ran LayerNorm's reductions over ``[1, N, d]`` several
  times slower than over ``[N, d]``."""
  b, t = layout.padded_shape
  if x.shape[:2] != (b, t):
    raise ValueError(f"to_flat: expected leading shape {(b, t)}, got {x.shape}")
  s, n = layout.shards, layout.slots
  flat = _flat_from_padded(x.reshape((s, (b // s) * t) + x.shape[2:]), layout)
  return flat.reshape((s * n,) + x.shape[2:])


def to_padded(x: jax.Array, layout: TokenLayout) -> jax.Array:
  """``[S * N, ...]`` -> ``[B, T, ...]``: each real token back in place, zeros at padding."""
  b, t = layout.padded_shape
  s, n = layout.shards, layout.slots
  if x.shape[0] != s * n:
    raise ValueError(f"to_padded: expected {s} x {n} slots on the leading axis, got {x.shape}")
  return _padded_from_flat(x.reshape((s, n) + x.shape[1:]), layout).reshape((b, t) + x.shape[1:])
