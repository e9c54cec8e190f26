"""Scaled dot-product attention with a hand-written backward pass.

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

import jax
import jax.numpy as jnp
import numpy as np


def _large_negative(dtype) -> jax.Array:
  """What ``jax.nn.dot_product_attention`` puts at masked logits."""
  return jnp.asarray(-0.7 * float(jnp.finfo(dtype).max), dtype)


def _scale(q) -> np.float32:
  return np.float32(1.0 / np.sqrt(q.shape[-1]))


def _forward(q, k, v, mask):
  """``(output [B, T, H, dh], probabilities [B, H, T, S] in the value dtype)``."""
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * _scale(q)
  logits = jnp.where(mask, logits, _large_negative(jnp.float32))
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
  return out, probs


@jax.custom_vjp
def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """Multi-head attention.

  Args:
    q: ``[B, T, H, dh]`` queries.
    k, v: ``[B, S, H, dh]`` keys and values (same dtype as ``q``).
    mask: bool, broadcastable to ``[B, H, T, S]``; True = may attend.

  Returns:
    ``[B, T, H, dh]`` in the value dtype.
  """
  return _forward(q, k, v, mask)[0]


def _fwd(q, k, v, mask):
  out, probs = _forward(q, k, v, mask)
  return out, (q, k, v, mask, probs, out)


def _bwd(res, d_out):
  q, k, v, mask, probs, out = res
  d_v = jnp.einsum("bhqk,bqhd->bkhd", probs, d_out.astype(v.dtype))
  d_probs = jnp.einsum("bqhd,bkhd->bhqk", d_out, v, preferred_element_type=jnp.float32)
  delta = jnp.einsum("bqhd,bqhd->bhq", d_out.astype(jnp.float32), out.astype(jnp.float32))
  d_logits = probs.astype(jnp.float32) * (d_probs - delta[..., None]) * _scale(q)
  # Masked logits are constants. Their probabilities are 0 except in an all-masked row,
  # whose uniform attention does not depend on q or k.
  d_logits = jnp.where(mask, d_logits, 0.0).astype(q.dtype)
  d_q = jnp.einsum("bhqk,bkhd->bqhd", d_logits, k)
  d_k = jnp.einsum("bhqk,bqhd->bkhd", d_logits, q)
  return d_q, d_k, d_v, None


dot_product_attention.defvjp(_fwd, _bwd)
