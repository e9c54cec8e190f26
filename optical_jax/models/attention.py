"""Scaled dot-product attention with a hand-written backward pass, and the switch between it
and ``jax.nn.dot_product_attention`` (:func:`attention`, ``EncoderConfig.attention``).

The forward pass is that of ``jax.nn.dot_product_attention``'s XLA path: logits
``q k^T`` in float32 (whatever the compute dtype), scaled by ``1/sqrt(dh)``,
masked positions set to a large negative number, softmax in float32, the
probabilities cast to the value dtype and multiplied by ``v``. An all-masked
row (a padding row) therefore attends uniformly and stays finite.

The backward pass uses the identity FlashAttention's backward is built on. With
``O = P V``, the softmax gradient ``dS = P * (dP - delta)`` needs
``delta_i = sum_j dP_ij P_ij``, which equals ``sum_d dO_id O_id``. Autodiff of
the softmax reduces the ``[B, H, T, T]`` product; this reduces the
``[B, T, H, dh]`` one (half the size at T = 64, dh = 32) and saves a pass over a
``T x T`` tensor. Measured on 2 CPU cores (``docs/PERFORMANCE.md``): e5-small's
unpadded encoder forward and backward on 16 x 64 tokens took 0.436 s against
0.474 s (medians of 20 interleaved runs, an ad-hoc script); the whole e5 OT
step 0.593 s against 0.607 s (``bench/ab.py``); the mBERT-shaped step, where
attention is a smaller share, the same. Values and gradients equal
``jax.nn.dot_product_attention``'s (tested, float32 and bfloat16).

Residuals kept for the backward pass: ``q, k, v``, the mask, the probabilities ``P``
``[B, H, T, S]`` (in the value dtype) and the output ``O``; autodiff keeps the
probabilities too.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def _large_negative(dtype) -> jax.Array:
  """What ``jax.nn.dot_product_attention`` puts at masked logits."""
  return jnp.asarray(-0.7 * float(jnp.finfo(dtype).max), dtype)


def _scale(q) -> np.float32:
  return np.float32(1.0 / np.sqrt(q.shape[-1]))


def _forward(q, k, v, mask, bias):
  """``(output [B, T, H, dh], probabilities [B, H, T, S] in the value dtype)``."""
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * _scale(q)
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  logits = jnp.where(mask, logits, _large_negative(jnp.float32))
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
  return out, probs


@jax.custom_vjp
def dot_product_attention(
  q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, bias: Optional[jax.Array] = None
) -> jax.Array:
  """Multi-head attention.

  Args:
    q: ``[B, T, H, dh]`` queries.
    k, v: ``[B, S, H, dh]`` keys and values (same dtype as ``q``).
    mask: bool, broadcastable to ``[B, H, T, S]``; True = may attend.
    bias: optional float, broadcastable to ``[B, H, T, S]``, added to the scaled logits before
      the mask (MPNet's relative-position bias); it gets a gradient.

  Returns:
    ``[B, T, H, dh]`` in the value dtype.
  """
  return _forward(q, k, v, mask, bias)[0]


def _fwd(q, k, v, mask, bias=None):
  out, probs = _forward(q, k, v, mask, bias)
  return out, (q, k, v, mask, bias, probs, out)


def _reduce_to(x: jax.Array, shape) -> jax.Array:
  """Sums ``x`` over the axes a broadcast to its shape added or stretched."""
  lead = x.ndim - len(shape)
  x = jnp.sum(x, axis=tuple(range(lead))) if lead else x
  axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
  return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _bwd(res, d_out):
  q, k, v, mask, bias, probs, out = res
  d_v = jnp.einsum("bhqk,bqhd->bkhd", probs, d_out.astype(v.dtype))
  d_probs = jnp.einsum("bqhd,bkhd->bhqk", d_out, v, preferred_element_type=jnp.float32)
  delta = jnp.einsum("bqhd,bqhd->bhq", d_out.astype(jnp.float32), out.astype(jnp.float32))
  # Masked logits are constants. Their probabilities are 0 except in an all-masked row,
  # whose uniform attention does not depend on q, k or the bias.
  d_scores = jnp.where(mask, probs.astype(jnp.float32) * (d_probs - delta[..., None]), 0.0)
  d_logits = (d_scores * _scale(q)).astype(q.dtype)
  d_q = jnp.einsum("bhqk,bkhd->bqhd", d_logits, k)
  d_k = jnp.einsum("bhqk,bqhd->bkhd", d_logits, q)
  d_bias = None if bias is None else _reduce_to(d_scores, bias.shape).astype(bias.dtype)
  return d_q, d_k, d_v, None, d_bias


dot_product_attention.defvjp(_fwd, _bwd)


#: ``EncoderConfig.attention``: ``"custom"`` (this module's backward pass), ``"xla"`` and
#: ``"cudnn"`` (``jax.nn.dot_product_attention`` with that implementation), ``"auto"``
#: (``"custom"`` on CPU, where it is measured faster; elsewhere ``jax.nn.dot_product_attention``
#: choosing its own implementation, cuDNN's fused kernel on GPUs where it applies).
IMPLEMENTATIONS = ("auto", "custom", "xla", "cudnn")


def attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array,
  bias: Optional[jax.Array] = None,
  implementation: str = "auto",
) -> jax.Array:
  """:func:`dot_product_attention` or ``jax.nn.dot_product_attention`` by ``implementation``
  (:data:`IMPLEMENTATIONS`); same arguments and result."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"attention implementation {implementation!r} not in {IMPLEMENTATIONS}")
  if implementation == "auto":
    implementation = "custom" if jax.default_backend() == "cpu" else None
  if implementation == "custom":
    return dot_product_attention(q, k, v, mask, bias)
  if bias is not None:
    bias = bias.astype(q.dtype)
  return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, implementation=implementation)
