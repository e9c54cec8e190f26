"""Train state and optimiser."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint must hold to resume exactly.

  Attributes:
    step: int32 [] steps taken.
    params: the student's ``{"encoder": ..., "head": ...}``.
    opt_state: optax state.
    rng: uint32 [2] base PRNG key; step ``k`` uses ``fold_in(rng, k)``.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation, seed: int) -> "TrainState":
    return cls(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=optimizer.init(params),
      rng=jax.random.PRNGKey(seed),
    )


def _decay_mask(params):
  """Weight decay on matrices only (not biases, LayerNorm scales or embeddings tables' norms)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, x: x.ndim >= 2
    and "layer_norm" not in jax.tree_util.keystr(path)
    and "norm" not in jax.tree_util.keystr(path).split("/")[-1],
    params,
  )


def _frozen_labels(params, freeze_embeddings: bool):
  def label(path, _):
    key = jax.tree_util.keystr(path)
    return "frozen" if freeze_embeddings and "word_embeddings" in key else "train"

  return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(
  learning_rate: float,
  total_steps: int,
  warmup_steps: int,
  weight_decay: float,
  grad_clip: float,
  freeze_embeddings: bool = False,
  b2: float = 0.999,
):
  """AdamW with linear warm-up then linear decay to 0, global-norm clipping,
  decoupled weight decay on matrices, optionally a frozen word-embedding table."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  schedule = optax.join_schedules(
    [
      optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1)),
      optax.linear_schedule(learning_rate, 0.0, max(total_steps - warmup_steps, 1)),
    ],
    [max(warmup_steps, 1)],
  )
  parts = []
  if grad_clip > 0:
    parts.append(optax.clip_by_global_norm(grad_clip))
  parts.append(optax.adamw(schedule, b2=b2, weight_decay=weight_decay, mask=_decay_mask))
  tx = optax.chain(*parts)
  if freeze_embeddings:
    tx = optax.multi_transform(
      {"train": tx, "frozen": optax.set_to_zero()}, lambda p: _frozen_labels(p, True)
    )
  return tx, schedule
