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
  g_ref = jax.grad(
    lambda q, k, v: jnp.sum(jax.nn.dot_product_attention(q, k, v, mask=mask) * w), (0, 1, 2)
  )
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
  g_ours = jax.grad(
    lambda q: jnp.sum((dot_product_attention(q, k, v, mask) * w).astype(jnp.float32))
  )(q)
  g_ref = jax.grad(
    lambda q: jnp.sum((jax.nn.dot_product_attention(q, k, v, mask=mask) * w).astype(jnp.float32))
  )(q)
  assert g_ours.dtype == jnp.bfloat16
  scale = float(np.abs(np.asarray(g_ref, np.float32)).max())
  np.testing.assert_allclose(
    np.asarray(g_ours, np.float32), np.asarray(g_ref, np.float32), atol=3e-2 * scale
  )


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
  for a, b in zip(
    jax.grad(ours, (0, 1, 2, 3))(q, k, v, bias), jax.grad(ref, (0, 1, 2, 3))(q, k, v, bias)
  ):
    assert a.shape == b.shape and np.abs(b).max() > 0
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "mpnet"])
def test_encoder_attention_switch_same_values_and_gradients(family):
  """EncoderConfig.attention: the custom backward pass and jax.nn.dot_product_attention ('xla')
  give the same encoder outputs and parameter gradients (MPNet: with the position bias); 'auto'
  is the custom one on CPU."""
  from optical_jax.models import Encoder, EncoderConfig
  from optical_jax.models.attention import attention

  kw = dict(
    vocab_size=50,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    intermediate_size=32,
    max_position_embeddings=40,
  )
  if family == "mpnet":
    kw.update(family="mpnet", type_vocab_size=0, pad_token_id=1, relative_attention_num_buckets=8)
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(2, 50, (3, 9)), jnp.int32)
  mask = jnp.asarray(np.arange(9)[None] < np.array([9, 4, 1])[:, None], jnp.int32)
  params = Encoder(EncoderConfig(**kw)).init(jax.random.PRNGKey(0), ids, mask)

  def loss(p, impl):
    out = Encoder(EncoderConfig(attention=impl, **kw)).apply(p, ids, mask).last_hidden_state
    return jnp.sum(jnp.sin(out) * mask[..., None])

  grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (l_c, g_c), (l_x, g_x) = (grad(params, i) for i in ("custom", "xla"))
  np.testing.assert_allclose(l_c, l_x, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g_c), jax.tree_util.tree_leaves(g_x)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  q, k, v, m = _inputs(jnp.float32)
  np.testing.assert_array_equal(attention(q, k, v, m), dot_product_attention(q, k, v, m))
  with pytest.raises(ValueError, match="attention 'flash' not in"):
    EncoderConfig(attention="flash", **kw)
