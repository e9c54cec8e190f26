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

Blocks are post-LayerNorm (as BERT and XLM-R) and run under ``nn.scan`` so a
12-layer model compiles one block.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from optical_jax.models.config import EncoderConfig

_init = nn.initializers.normal(stddev=0.02)


def _activation(name: str):
  if name == "gelu":
    return functools.partial(jax.nn.gelu, approximate=False)
  return functools.partial(jax.nn.gelu, approximate=True)


def position_ids(config: EncoderConfig, input_ids: jax.Array) -> jax.Array:
  """Position ids ``[B, T] int32`` as HF computes them for each family."""
  if config.family == "xlm-roberta":
    real = (input_ids != config.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(real, axis=1) * real + config.pad_token_id
  return jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)


class EncoderOutput(NamedTuple):
  """``last_hidden_state [B, T, d]`` in the compute dtype; ``hidden_states``
  ``[L + 1, B, T, d]`` (embeddings, then every block) when asked for, else None."""

  last_hidden_state: jax.Array
  hidden_states: Optional[jax.Array]


class Embeddings(nn.Module):
  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids, token_type_ids, deterministic: bool):
    cfg = self.config
    embed = functools.partial(nn.Embed, features=cfg.hidden_size, embedding_init=_init,
                              param_dtype=jnp.float32)
    x = embed(cfg.vocab_size, name="word_embeddings")(input_ids)
    x = x + embed(cfg.max_position_embeddings, name="position_embeddings")(
        position_ids(cfg, input_ids))
    x = x + embed(cfg.type_vocab_size, name="token_type_embeddings")(token_type_ids)
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    return x.astype(cfg.compute_dtype)


class Attention(nn.Module):
  """Multi-head self-attention through ``jax.nn.dot_product_attention``."""

  config: EncoderConfig

  @nn.compact
  def __call__(self, x, mask):
    """x: [B, T, d]; mask: [B, T] bool (True = real token). Returns [B, T, d]."""
    cfg = self.config
    b, t, _ = x.shape
    dense = functools.partial(nn.Dense, cfg.hidden_size, kernel_init=_init,
                              dtype=cfg.compute_dtype, param_dtype=jnp.float32)
    split = lambda y: y.reshape(b, t, cfg.num_heads, cfg.head_dim)
    q = split(dense(name="query")(x))
    k = split(dense(name="key")(x))
    v = split(dense(name="value")(x))
    # mask broadcasts to [B, heads, T_q, T_k]: every query attends to real keys.
    y = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
    return dense(name="out")(y.reshape(b, t, cfg.hidden_size))


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
    h = _activation(cfg.hidden_act)(dense(cfg.intermediate_size, name="mlp_in")(x))
    h = dense(cfg.hidden_size, name="mlp_out")(h)
    x = norm(name="mlp_norm")(x + drop(h, deterministic=deterministic))
    return x, (x if self.collect else None)


class Encoder(nn.Module):
  """BERT / XLM-R encoder.

  Call with ``input_ids [B, T] int32``, ``attention_mask [B, T]`` (1 = real
  token, 0 = padding), optional ``token_type_ids [B, T]`` (default zeros).
  Returns :class:`EncoderOutput`. Padding rows stay finite: an all-padding
  row attends uniformly instead of producing NaN.
  """

  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True,
               output_hidden_states: bool = False) -> EncoderOutput:
    cfg = self.config
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    mask = attention_mask.astype(bool)
    embedded = Embeddings(cfg, name="embeddings")(input_ids, token_type_ids, deterministic)
    block = Block
    if cfg.remat:
      block = nn.remat(Block, static_argnums=(3,), prevent_cse=False)
    stack = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                    in_axes=(nn.broadcast, nn.broadcast), length=cfg.num_layers)
    x, per_layer = stack(cfg, collect=output_hidden_states, name="layers")(
        embedded, mask, deterministic)
    hidden = None
    if output_hidden_states:  # index 0 is the embedding output, i the output of block i
      hidden = jnp.concatenate([embedded[None], per_layer], axis=0)
    return EncoderOutput(x, hidden)
