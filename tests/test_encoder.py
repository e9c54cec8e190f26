"""Encoder numerics that need no reference implementation: bf16 vs fp32,
remat, padding invariance, finite outputs on degenerate inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.models import Encoder, EncoderConfig, l2_normalize, pool

CFG = EncoderConfig(vocab_size=120, hidden_size=64, num_layers=3, num_heads=4, intermediate_size=128,
                    max_position_embeddings=64, type_vocab_size=1)


def _batch(seed=0, b=4, t=16):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, CFG.vocab_size, size=(b, t)).astype(np.int32)
  lengths = rng.integers(1, t + 1, size=b)
  mask = (np.arange(t)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask == 1, ids, CFG.pad_token_id)
  return ids, mask


@pytest.fixture(scope="module")
def params():
  ids, mask = _batch()
  return Encoder(CFG).init(jax.random.key(0), ids, mask)


def _embed(cfg, params, ids, mask):
  h = Encoder(cfg).apply(params, ids, mask).last_hidden_state
  return l2_normalize(pool(h, mask, "mean"))


def test_bf16_close_to_fp32(params):
  """bf16 compute (fp32 params): pooled cosine >= 0.999, token states within 5e-2 relative."""
  ids, mask = _batch(1)
  f32 = Encoder(CFG).apply(params, ids, mask).last_hidden_state
  b16 = Encoder(CFG.replace(dtype="bfloat16")).apply(params, ids, mask).last_hidden_state
  assert b16.dtype == jnp.bfloat16
  real = mask.astype(bool)
  rel = np.abs(np.asarray(b16, np.float32) - np.asarray(f32))[real].max() / np.abs(np.asarray(f32))[real].max()
  assert rel < 5e-2
  cos = np.sum(np.asarray(_embed(CFG, params, ids, mask)) *
               np.asarray(_embed(CFG.replace(dtype="bfloat16"), params, ids, mask)), -1)
  assert cos.min() >= 0.999


def test_remat_same_values_and_grads(params):
  ids, mask = _batch(2)

  def loss(p, cfg):
    return jnp.sum(_embed(cfg, p, ids, mask) ** 3)

  g1 = jax.grad(loss)(params, CFG)
  g2 = jax.grad(loss)(params, CFG.replace(remat=True))
  for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_padding_does_not_change_real_tokens(params):
  ids, mask = _batch(3, t=8)
  h1 = Encoder(CFG).apply(params, ids, mask).last_hidden_state
  ids2 = np.pad(ids, ((0, 0), (0, 24)), constant_values=CFG.pad_token_id)
  mask2 = np.pad(mask, ((0, 0), (0, 24)))
  h2 = Encoder(CFG).apply(params, ids2, mask2).last_hidden_state
  real = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(h1)[real], np.asarray(h2)[:, :8][real], atol=1e-5)


def test_degenerate_rows_are_finite(params):
  ids, mask = _batch(4)
  mask[0] = 0  # an all-padding row
  mask[1] = 0
  mask[1, 0] = 1  # a one-token row
  out = _embed(CFG, params, ids, mask)
  assert np.isfinite(np.asarray(out)).all()
  assert np.allclose(np.asarray(out)[0], 0.0)
  g = jax.grad(lambda p: jnp.sum(_embed(CFG, p, ids, mask)))(params)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(g))


def test_jit_equals_eager(params):
  ids, mask = _batch(5)
  eager = Encoder(CFG).apply(params, ids, mask).last_hidden_state
  jitted = jax.jit(Encoder(CFG).apply)(params, ids, mask).last_hidden_state
  np.testing.assert_allclose(eager, jitted, atol=1e-5)


def test_dropout_only_when_not_deterministic(params):
  cfg = CFG.replace(dropout_rate=0.5)
  ids, mask = _batch(6)
  m = Encoder(cfg)
  a = m.apply(params, ids, mask).last_hidden_state
  b = m.apply(params, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(1)}).last_hidden_state
  np.testing.assert_allclose(a, Encoder(CFG).apply(params, ids, mask).last_hidden_state, atol=1e-6)
  assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-2


def test_config_validation():
  with pytest.raises(ValueError, match="not divisible"):
    EncoderConfig(hidden_size=30, num_heads=4)
  with pytest.raises(ValueError, match="unknown encoder family"):
    EncoderConfig(family="gpt")
  with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
    EncoderConfig.from_hf({"model_type": "gpt2"})
