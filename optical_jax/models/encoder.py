"""Flax (Linen) transformer encoders of the BERT, XLM-RoBERTa and MPNet families.

Why Linen: parameters are plain pytrees, so a frozen teacher and a trained
student are just two dicts, shardings come from ``jax.eval_shape`` on the
initialiser, and Orbax saves them without adapters.

Parameter tree (the loaders in ``optical_jax.loading`` produce exactly this)::

  embeddings/word_embeddings/embedding        [V, d]
  embeddings/position_embeddings/embedding    [P, d]
  embeddings/token_type_embeddings/embedding  [types, d]   (not for MPNet)
  relative_attention_bias/embedding           [buckets, heads]   (MPNet only)
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

Two ways to spend less compute on padding, both exact for every real token:

* ``segment_ids`` (packed rows, for encoding collections): several texts
  share a row, with block-diagonal attention and positions restarting per text.
* ``token_index`` (unpadded dense layers, for training batches,
  :mod:`optical_jax.models.unpad`): the per-token layers run on the real
  tokens alone, ``[S * N, d]``; attention runs on the padded ``[B, T]`` layout.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.models import unpad
from optical_jax.models.attention import attention
from optical_jax.models.config import EncoderConfig
from optical_jax.models.pooling import segment_starts

_init = nn.initializers.normal(stddev=0.02)


def _activation(name: str):
  if name == "gelu":
    return functools.partial(jax.nn.gelu, approximate=False)
  return functools.partial(jax.nn.gelu, approximate=True)


def position_ids(
  config: EncoderConfig, input_ids: jax.Array, segment_ids: Optional[jax.Array] = None
) -> jax.Array:
  """Position ids ``[B, T] int32`` as HF computes them for each family.

  With ``segment_ids`` (packed rows, see :class:`Encoder`) positions restart
  at every segment, so each packed text sees the positions it would alone.
  """
  if segment_ids is not None:
    idx = jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)
    start = jax.lax.cummax(jnp.where(segment_starts(segment_ids), idx, 0), axis=1)
    within = idx - start
    if config.family != "bert":
      return jnp.where(segment_ids > 0, within + config.pad_token_id + 1, config.pad_token_id)
    return within
  if config.family != "bert":
    real = (input_ids != config.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(real, axis=1) * real + config.pad_token_id
  return jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)


def relative_position_bucket(relative: jax.Array, num_buckets: int, max_distance: int) -> jax.Array:
  """MPNet's (and T5's bidirectional) bucket of each relative position ``j - i`` (int32):
  half the buckets per direction, exact below ``num_buckets // 4``, log-spaced up to
  ``max_distance``, as HF's ``MPNetEncoder.relative_position_bucket``."""
  n = -relative
  half = num_buckets // 2
  ret = (n < 0).astype(jnp.int32) * half
  n = jnp.abs(n)
  exact = half // 2
  safe = jnp.maximum(n, 1).astype(jnp.float32)
  large = exact + (jnp.log(safe / exact) / np.log(max_distance / exact) * (half - exact)).astype(
    jnp.int32
  )
  large = jnp.minimum(large, half - 1)
  return ret + jnp.where(n < exact, n, large)


def attention_mask_4d(
  attention_mask: jax.Array, segment_ids: Optional[jax.Array] = None
) -> jax.Array:
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
  """``layer(x)`` for ``x [..., d_in]`` (``[B, T, d]`` padded, ``[S * N, d]`` unpadded) as one
  2-D matmul ``[B*T, d_in] @ [d_in, d_out]``.

  Same parameters and result; the weight gradient then contracts one axis
  instead of two, which XLA's CPU backend runs faster (measured in ``docs/PERFORMANCE.md``).
  """
  return layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


class EncoderOutput(NamedTuple):
  """``last_hidden_state [B, T, d]`` in the compute dtype (``[B, T, output_dim]`` through the
  output projection when the config has one); ``hidden_states`` ``[L + 1, B, T, d]``
  (embeddings, then every block, never projected) when asked for, else None."""

  last_hidden_state: jax.Array
  hidden_states: Optional[jax.Array]


class Embeddings(nn.Module):
  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids, token_type_ids, deterministic: bool, segment_ids=None):
    cfg = self.config
    embed = functools.partial(
      nn.Embed, features=cfg.hidden_size, embedding_init=_init, param_dtype=jnp.float32
    )
    x = embed(cfg.vocab_size, name="word_embeddings")(input_ids)
    x = x + embed(cfg.max_position_embeddings, name="position_embeddings")(
      position_ids(cfg, input_ids, segment_ids)
    )
    if cfg.type_vocab_size:
      x = x + embed(cfg.type_vocab_size, name="token_type_embeddings")(token_type_ids)
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    return x.astype(cfg.compute_dtype)


class Attention(nn.Module):
  """Multi-head self-attention (:func:`optical_jax.models.attention.dot_product_attention`:
  ``jax.nn.dot_product_attention``'s forward pass, a cheaper backward pass)."""

  config: EncoderConfig

  @nn.compact
  def __call__(self, x, mask, layout: Optional[unpad.TokenLayout] = None, bias=None):
    """x: [B, T, d], or [S * N, d] with ``layout``; mask: bool, broadcastable to
    [B, heads, T, T] (True = may attend; :func:`attention_mask_4d`); bias: optional
    [1, heads, T, T] added to the logits (MPNet). Returns x's shape.

    With ``layout`` the projections run on the real tokens and only the attention
    itself on the padded [B, T] layout."""
    cfg = self.config
    b, t = x.shape[:2] if layout is None else layout.padded_shape
    dense = functools.partial(
      nn.Dense, cfg.hidden_size, kernel_init=_init, dtype=cfg.compute_dtype, param_dtype=jnp.float32
    )
    padded = (lambda y: y) if layout is None else (lambda y: unpad.to_padded(y, layout))
    split = lambda y: padded(y).reshape(b, t, cfg.num_heads, cfg.head_dim)
    q = split(dense2d(dense(name="query"), x))
    k = split(dense2d(dense(name="key"), x))
    v = split(dense2d(dense(name="value"), x))
    y = attention(q, k, v, mask, bias, cfg.attention).reshape(b, t, cfg.hidden_size)
    if layout is not None:
      y = unpad.to_flat(y, layout)
    return dense2d(dense(name="out"), y)


class Block(nn.Module):
  """One post-LN transformer block; scan-compatible ``(carry, out)`` signature."""

  config: EncoderConfig
  collect: bool = False

  @nn.compact
  def __call__(self, x, mask, layout, bias, deterministic: bool):
    """x [B, T, d] (``layout`` None) or [S * N, d] (unpadded); bias: MPNet's relative-position
    bias or None; returns ``(x, x or None)``."""
    cfg = self.config
    norm = functools.partial(
      nn.LayerNorm, epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype, param_dtype=jnp.float32
    )
    dense = functools.partial(
      nn.Dense, kernel_init=_init, dtype=cfg.compute_dtype, param_dtype=jnp.float32
    )
    drop = nn.Dropout(cfg.dropout_rate)
    h = Attention(cfg, name="attention")(x, mask, layout, bias)
    x = norm(name="attention_norm")(x + drop(h, deterministic=deterministic))
    h = _activation(cfg.hidden_act)(dense2d(dense(cfg.intermediate_size, name="mlp_in"), x))
    h = dense2d(dense(cfg.hidden_size, name="mlp_out"), h)
    x = norm(name="mlp_norm")(x + drop(h, deterministic=deterministic))
    return x, (x if self.collect else None)


class Encoder(nn.Module):
  """BERT / XLM-R / MPNet encoder.

  Call with ``input_ids [B, T] int32``, ``attention_mask [B, T]`` (1 = real
  token, 0 = padding), optional ``token_type_ids [B, T]`` (default zeros).
  Returns :class:`EncoderOutput`. Padding rows stay finite: an all-padding
  row attends uniformly instead of producing NaN.

  Packed rows: with ``segment_ids [B, T] int32`` (0 = padding, 1, 2, ... the
  texts of a row, each contiguous) several texts share a row: attention is
  block-diagonal and positions restart per text, so each text's states equal
  those of encoding it alone (tested), without the padding.

  Unpadded dense layers: with ``token_index [S, N] int32``
  (:mod:`optical_jax.models.unpad`) every per-token layer runs on the ``N``
  slots of real tokens per shard; the outputs are still ``[B, T, d]``, equal to
  the padded encoder's at real tokens (tested) and zero at padding.
  """

  config: EncoderConfig

  @nn.compact
  def __call__(
    self,
    input_ids,
    attention_mask,
    token_type_ids=None,
    deterministic: bool = True,
    output_hidden_states: bool = False,
    segment_ids=None,
    token_index=None,
  ) -> EncoderOutput:
    cfg = self.config
    if token_index is not None and segment_ids is not None:
      raise ValueError("pass segment_ids (packed rows) or token_index (unpadded), not both")
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    mask = attention_mask_4d(attention_mask, segment_ids)
    layout = None if token_index is None else unpad.make_layout(attention_mask, token_index)
    embedded = Embeddings(cfg, name="embeddings")(
      input_ids, token_type_ids, deterministic, segment_ids
    )
    block = Block
    if cfg.remat:
      block = nn.remat(Block, static_argnums=(5,), prevent_cse=False)
    bias = None
    if cfg.relative_attention_num_buckets:  # MPNet: one bias for every layer, from j - i
      t = input_ids.shape[1]
      buckets = relative_position_bucket(
        jnp.arange(t)[None, :] - jnp.arange(t)[:, None],
        cfg.relative_attention_num_buckets,
        cfg.relative_max_distance,
      )
      table = nn.Embed(
        cfg.relative_attention_num_buckets,
        cfg.num_heads,
        embedding_init=_init,
        param_dtype=jnp.float32,
        name="relative_attention_bias",
      )
      bias = jnp.transpose(table(buckets), (2, 0, 1))[None]  # [1, heads, T, T]
    stack = nn.scan(
      block,
      variable_axes={"params": 0},
      split_rngs={"params": True, "dropout": True},
      in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
      length=cfg.num_layers,
      unroll=cfg.num_layers if cfg.layer_unroll == 0 else cfg.layer_unroll,
    )
    x0 = embedded if layout is None else unpad.to_flat(embedded, layout)
    x, per_layer = stack(cfg, collect=output_hidden_states, name="layers")(
      x0, mask, layout, bias, deterministic
    )
    hidden = None
    if output_hidden_states:  # index 0 is the embedding output, i the output of block i
      hidden = jnp.concatenate([x0[None], per_layer], axis=0)
      if layout is not None:
        hidden = jax.vmap(lambda h: unpad.to_padded(h, layout))(hidden)
    if layout is not None:
      x = unpad.to_padded(x, layout)
    if cfg.output_dim:  # into a teacher's space (bias-free: padding stays zero)
      x = nn.Dense(
        cfg.output_dim,
        use_bias=False,
        kernel_init=_init,
        dtype=cfg.compute_dtype,
        param_dtype=jnp.float32,
        name="output_projection",
      )(x)
    return EncoderOutput(x, hidden)
