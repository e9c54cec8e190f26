"""Retrieval models on top of an encoder: late interaction (ColBERT MaxSim) and dense.

A retrieval model's parameters are ``{"encoder": <encoder params>, "head":
{"kernel": [d, p]}}``; the head (a bias-free linear projection to ``p``
dimensions, 128 by default as in ColBERT) exists only for a late-interaction
model that was fine-tuned here. A model taken as is (multilingual-e5-small is
already retrieval-trained) has no head: its token states are used directly,
L2-normalised.

* :func:`token_embeddings`: ``[B, T, p]`` normalised token vectors from a chosen
  layer, through the head if present. Used for MaxSim and for OT distillation.
* :func:`maxsim_scores`: ``sum_i max_j <q_i, d_j>`` over real tokens.
* :func:`sentence_embeddings`: pooled, normalised ``[B, d]`` for the dense ranker.

The InfoNCE loss over these scores is ``losses/contrastive.py``.
"""

from __future__ import annotations

from typing import Dict

import jax
import jax.numpy as jnp

from optical_jax.models.encoder import Encoder
from optical_jax.models.pooling import l2_normalize, pool

RANKERS = ("maxsim", "dense")


def init_head(rng: jax.Array, hidden_size: int, dim: int) -> Dict[str, jax.Array]:
  """A ColBERT-style projection ``{"kernel": [d, p]}`` (LeCun-normal)."""
  return {"kernel": jax.random.normal(rng, (hidden_size, dim), jnp.float32) / jnp.sqrt(hidden_size)}


def hidden_states(
  module: Encoder,
  encoder_params,
  ids,
  mask,
  layer: int = -1,
  deterministic: bool = True,
  rngs=None,
  segment_ids=None,
  token_index=None,
) -> jax.Array:
  """Token states of ``layer`` (-1 = last; 0 = embeddings). -> [B, T, d].
  ``segment_ids``: packed rows; ``token_index [S, N]``: unpadded dense layers (zeros at
  padding); see ``Encoder``."""
  kw = dict(
    deterministic=deterministic, rngs=rngs, segment_ids=segment_ids, token_index=token_index
  )
  if layer == -1 or layer == module.config.num_layers:
    return module.apply(encoder_params, ids, mask, **kw).last_hidden_state
  return module.apply(encoder_params, ids, mask, output_hidden_states=True, **kw).hidden_states[
    layer
  ]


def token_embeddings(
  module: Encoder,
  params,
  ids,
  mask,
  layer: int = -1,
  use_head: bool = True,
  deterministic: bool = True,
  rngs=None,
  segment_ids=None,
  token_index=None,
) -> jax.Array:
  """ids, mask [B, T] -> normalised token vectors [B, T, p] float32 (zeros at padding).
  ``segment_ids`` / ``token_index``: packed rows / unpadded dense layers (see ``Encoder``)."""
  h = hidden_states(
    module, params["encoder"], ids, mask, layer, deterministic, rngs, segment_ids, token_index
  )
  h = h.astype(jnp.float32)
  if use_head and params.get("head") is not None:
    h = h @ params["head"]["kernel"]
  return l2_normalize(h) * mask[..., None].astype(jnp.float32)


def sentence_embeddings(
  module: Encoder,
  params,
  ids,
  mask,
  pooling: str = "mean",
  deterministic: bool = True,
  rngs=None,
  token_index=None,
) -> jax.Array:
  """ids, mask [B, T] -> normalised pooled vectors [B, d] float32. ``token_index``: unpadded
  dense layers (see ``Encoder``)."""
  h = hidden_states(
    module, params["encoder"], ids, mask, -1, deterministic, rngs, token_index=token_index
  )
  return l2_normalize(pool(h, mask, pooling))


def maxsim_scores(q: jax.Array, q_mask: jax.Array, d: jax.Array, d_mask: jax.Array) -> jax.Array:
  """Late interaction. q [Bq, Tq, p], d [Bd, Td, p], masks -> scores [Bq, Bd] float32."""
  sim = jnp.einsum("qip,djp->qdij", q, d)
  sim = jnp.where(d_mask[None, :, None, :].astype(bool), sim, -jnp.inf)
  best = jnp.max(sim, axis=-1)  # [Bq, Bd, Tq]
  best = jnp.where(q_mask[:, None, :].astype(bool), best, 0.0)
  return jnp.sum(jnp.where(jnp.isfinite(best), best, 0.0), axis=-1)
