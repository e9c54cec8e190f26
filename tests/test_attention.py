"""``models/attention.py``: values and gradients equal ``jax.nn.dot_product_attention``'s."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.models.attention import dot_product_attention


def _inputs(dtype, seed=0, b=3, t=7, h=2, dh=4, block_diagonal=False):
  rng = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(2 * rng.standard_normal((b, t, h, dh)), dtype) for _ in range(3))
  lengths = np.array([t, 3, 0])  # a full row, a partial row, an all-padding row
  real = np.arange(t)[None] < lengths[:, None]
  if block_diagonal:  # packed rows: two segments in row 0
    seg = np.where(real, 1 + (np.arange(t)[None] >= 4), 0)
    mask = (seg[:, :, None] == seg[:, None, :]) & real[:, None, :]
    mask = mask[:, None]
  else:
    mask = real[:, None, None, :]
  return q, k, v, jnp.asarray(mask)


@pytest.mark.parametrize("block_diagonal", [False, True])
def test_float32_values_and_gradients(block_diagonal):
  q, k, v, mask = _inputs(jnp.float32, block_diagonal=block_diagonal)
  ours = jax.jit(dot_product_attention)(q, k, v, mask)
  ref = jax.nn.dot_product_attention(q, k, v, mask=mask)
  np.testing.assert_allclose(ours, ref, atol=1e-6)
  assert np.isfinite(np.asarray(ours)).all()
  w = jnp.asarray(np.random.default_rng(1).standard_normal(ours.shape), jnp.float32)
  g_ours = jax.grad(lambda q, k, v: jnp.sum(dot_product_attention(q, k, v, mask) * w), (0, 1, 2))
  g_ref = jax.grad(lambda q, k, v: jnp.sum(jax.nn.dot_product_attention(q, k, v, mask=mask) * w),
                   (0, 1, 2))
  for a, b in zip(g_ours(q, k, v), g_ref(q, k, v)):
    assert np.abs(b).max() > 0
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


def test_bfloat16_close_to_jax():
  q, k, v, mask = _inputs(jnp.bfloat16, seed=2)
  ours = dot_product_attention(q, k, v, mask)
  assert ours.dtype == jnp.bfloat16
  ref = jax.nn.dot_product_attention(q, k, v, mask=mask)
  np.testing.assert_allclose(np.asarray(ours, np.float32), np.asarray(ref, np.float32), atol=2e-2)
  w = jnp.ones(ours.shape, jnp.bfloat16)
  g_ours = jax.grad(lambda q: jnp.sum((dot_product_attention(q, k, v, mask) * w).astype(jnp.float32)))(q)
  g_ref = jax.grad(lambda q: jnp.sum((jax.nn.dot_product_attention(q, k, v, mask=mask) * w)
                                     .astype(jnp.float32)))(q)
  assert g_ours.dtype == jnp.bfloat16
  scale = float(np.abs(np.asarray(g_ref, np.float32)).max())
  np.testing.assert_allclose(np.asarray(g_ours, np.float32), np.asarray(g_ref, np.float32),
                             atol=3e-2 * scale)


@pytest.mark.parametrize("shape", [(1, 2, 7, 7), (3, 2, 7, 7)])
def test_bias_values_and_gradients(shape):
  """An additive logit bias (MPNet's relative positions; shared over the batch or per row):
  values and gradients, the bias's included, equal jax.nn.dot_product_attention's."""
  q, k, v, mask = _inputs(jnp.float32, seed=3)
  bias = jnp.asarray(np.random.default_rng(4).standard_normal(shape), jnp.float32)
  w = jnp.asarray(np.random.default_rng(5).standard_normal(q.shape), jnp.float32)
  ours = lambda q, k, v, b: jnp.sum(dot_product_attention(q, k, v, mask, b) * w)
  ref = lambda q, k, v, b: jnp.sum(jax.nn.dot_product_attention(q, k, v, bias=b, mask=mask) * w)
  np.testing.assert_allclose(jax.jit(ours)(q, k, v, bias), ref(q, k, v, bias), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1, 2, 3))(q, k, v, bias),
                  jax.grad(ref, (0, 1, 2, 3))(q, k, v, bias)):
    assert a.shape == b.shape and np.abs(b).max() > 0
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
