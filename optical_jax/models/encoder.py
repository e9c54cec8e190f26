"""Flax (Linen) transformer encoders of the BERT and XLM-RoBERTa families.

Why Linen: parameters are plain pytrees, so a frozen teacher and a trained
student are just two dicts, shardings come from ``jax.eval_shape`` on the
initialiser, and Orbax saves them without adapters.

Parameter tree (the loaders in ``optical_jax.loading`` produce exactly this)::

  embeddings/word_embeddings/embedding        [V, d]
  embeddings/position_embeddings/embedding    [P, d]
  embeddings/token_type_embeddings/embedding  [types, d]
  embeddings/layer_norm/{scale,bias}          [d]
  layers/attention/{query,key,value,out}/kernel  [L, d, d]   (x @ kernel)
  layers/attention/{query,key,value,out}/bias    [L, d]
  layers/attention_norm/{scale,bias}          [L, d]
  layers/mlp_in/{kernel [L, d, f], bias [L, f]}
  layers/mlp_out/{kernel [L, f, d], bias [L, d]}
  layers/mlp_norm/{scale,bias}                [L, d]

Blocks are post-LayerNorm (as BERT and XLM-R) and run under ``nn.scan``, so the
parameters of all layers are stacked along a leading ``[L]`` axis whatever the
unrolling (``EncoderConfig.layer_unroll``: 1 compiles one block, 0 unrolls all).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from optical_jax.models.config import EncoderConfig
from optical_jax.models.pooling import segment_starts

_init = nn.initializers.normal(stddev=0.02)


def _activation(name: str):
  if name == "gelu":
    return functools.partial(jax.nn.gelu, approximate=False)
  return functools.partial(jax.nn.gelu, approximate=True)


def position_ids(config: EncoderConfig, input_ids: jax.Array,
                 segment_ids: Optional[jax.Array] = None) -> jax.Array:
  """Position ids ``[B, T] int32`` as HF computes them for each family.

  With ``segment_ids`` (packed rows, see :class:`Encoder`) positions restart
  at every segment, so each packed text sees the positions it would alone.
  """
  if segment_ids is not None:
    idx = jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)
    start = jax.lax.cummax(jnp.where(segment_starts(segment_ids), idx, 0), axis=1)
    within = idx - start
    if config.family == "xlm-roberta":
      return jnp.where(segment_ids > 0, within + config.pad_token_id + 1, config.pad_token_id)
    return within
  if config.family == "xlm-roberta":
    real = (input_ids != config.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(real, axis=1) * real + config.pad_token_id
  return jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)


def attention_mask_4d(attention_mask: jax.Array,
                      segment_ids: Optional[jax.Array] = None) -> jax.Array:
  """Which keys each query may attend to, broadcastable to ``[B, heads, T, T]`` bool.

  Without segments: ``[B, 1, 1, T]``, every real key. With ``segment_ids
  [B, T]`` (0 = padding): ``[B, 1, T, T]``, the real keys of the query's own
  segment (block-diagonal), so packed texts never see each other.
  """
  real = attention_mask.astype(bool)
  if segment_ids is None:
    return real[:, None, None, :]
  same = segment_ids[:, :, None] == segment_ids[:, None, :]
  return (same & real[:, None, :])[:, None]


def dense2d(layer: nn.Dense, x: jax.Array) -> jax.Array:
  """``layer(x)`` for ``x [B, T, d_in]`` as one 2-D matmul ``[B*T, d_in] @ [d_in, d_out]``.

  Same parameters and result; the weight gradient then contracts one axis
  instead of two, which XLA's CPU backend runs about 2x faster
  (``docs/PERFORMANCE.md``).
  """
  return layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


class EncoderOutput(NamedTuple):
  """``last_hidden_state [B, T, d]`` in the compute dtype; ``hidden_states``
  ``[L + 1, B, T, d]`` (embeddings, then every block) when asked for, else None."""

  last_hidden_state: jax.Array
  hidden_states: Optional[jax.Array]


class Embeddings(nn.Module):
  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids, token_type_ids, deterministic: bool, segment_ids=None):
    cfg = self.config
    embed = functools.partial(nn.Embed, features=cfg.hidden_size, embedding_init=_init,
                              param_dtype=jnp.float32)
    x = embed(cfg.vocab_size, name="word_embeddings")(input_ids)
    x = x + embed(cfg.max_position_embeddings, name="position_embeddings")(
        position_ids(cfg, input_ids, segment_ids))
    x = x + embed(cfg.type_vocab_size, name="token_type_embeddings")(token_type_ids)
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    return x.astype(cfg.compute_dtype)


class Attention(nn.Module):
  """Multi-head self-attention through ``jax.nn.dot_product_attention``."""

  config: EncoderConfig

  @nn.compact
  def __call__(self, x, mask):
    """x: [B, T, d]; mask: bool, broadcastable to [B, heads, T, T] (True = may attend;
    :func:`attention_mask_4d`). Returns [B, T, d]."""
    cfg = self.config
    b, t, _ = x.shape
    dense = functools.partial(nn.Dense, cfg.hidden_size, kernel_init=_init,
                              dtype=cfg.compute_dtype, param_dtype=jnp.float32)
    split = lambda y: y.reshape(b, t, cfg.num_heads, cfg.head_dim)
    q = split(dense2d(dense(name="query"), x))
    k = split(dense2d(dense(name="key"), x))
    v = split(dense2d(dense(name="value"), x))
    y = jax.nn.dot_product_attention(q, k, v, mask=mask)
    return dense2d(dense(name="out"), y.reshape(b, t, cfg.hidden_size))


class Block(nn.Module):
  """One post-LN transformer block; scan-compatible ``(carry, out)`` signature."""

  config: EncoderConfig
  collect: bool = False

  @nn.compact
  def __call__(self, x, mask, deterministic: bool):
    cfg = self.config
    norm = functools.partial(nn.LayerNorm, epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype,
                             param_dtype=jnp.float32)
    dense = functools.partial(nn.Dense, kernel_init=_init, dtype=cfg.compute_dtype,
                              param_dtype=jnp.float32)
    drop = nn.Dropout(cfg.dropout_rate)
    h = Attention(cfg, name="attention")(x, mask)
    x = norm(name="attention_norm")(x + drop(h, deterministic=deterministic))
    h = _activation(cfg.hidden_act)(dense2d(dense(cfg.intermediate_size, name="mlp_in"), x))
    h = dense2d(dense(cfg.hidden_size, name="mlp_out"), h)
    x = norm(name="mlp_norm")(x + drop(h, deterministic=deterministic))
    return x, (x if self.collect else None)


class Encoder(nn.Module):
  """BERT / XLM-R encoder.

  Call with ``input_ids [B, T] int32``, ``attention_mask [B, T]`` (1 = real
  token, 0 = padding), optional ``token_type_ids [B, T]`` (default zeros).
  Returns :class:`EncoderOutput`. Padding rows stay finite: an all-padding
  row attends uniformly instead of producing NaN.

  Packed rows: with ``segment_ids [B, T] int32`` (0 = padding, 1, 2, ... the
  texts of a row, each contiguous) several texts share a row: attention is
  block-diagonal and positions restart per text, so each text's states equal
  those of encoding it alone (tested), without the padding.
  """

  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True,
               output_hidden_states: bool = False, segment_ids=None) -> EncoderOutput:
    cfg = self.config
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    mask = attention_mask_4d(attention_mask, segment_ids)
    embedded = Embeddings(cfg, name="embeddings")(input_ids, token_type_ids, deterministic,
                                                  segment_ids)
    block = Block
    if cfg.remat:
      block = nn.remat(Block, static_argnums=(3,), prevent_cse=False)
    stack = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                    in_axes=(nn.broadcast, nn.broadcast), length=cfg.num_layers,
                    unroll=cfg.num_layers if cfg.layer_unroll == 0 else cfg.layer_unroll)
    x, per_layer = stack(cfg, collect=output_hidden_states, name="layers")(
        embedded, mask, deterministic)
    hidden = None
    if output_hidden_states:  # index 0 is the embedding output, i the output of block i
      hidden = jnp.concatenate([embedded[None], per_layer], axis=0)
    return EncoderOutput(x, hidden)
