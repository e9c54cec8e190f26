"""Encoder numerics that need no reference implementation: bf16 vs fp32,
remat, padding invariance, finite outputs on degenerate inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.models import Encoder, EncoderConfig, l2_normalize, pool

CFG = EncoderConfig(
  vocab_size=120,
  hidden_size=64,
  num_layers=3,
  num_heads=4,
  intermediate_size=128,
  max_position_embeddings=64,
  type_vocab_size=1,
)


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
  rel = (
    np.abs(np.asarray(b16, np.float32) - np.asarray(f32))[real].max()
    / np.abs(np.asarray(f32))[real].max()
  )
  assert rel < 5e-2
  cos = np.sum(
    np.asarray(_embed(CFG, params, ids, mask))
    * np.asarray(_embed(CFG.replace(dtype="bfloat16"), params, ids, mask)),
    -1,
  )
  assert cos.min() >= 0.999


def test_remat_same_values_and_grads(params):
  ids, mask = _batch(2)

  def loss(p, cfg):
    return jnp.sum(_embed(cfg, p, ids, mask) ** 3)

  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g1 = grad(params, CFG)
  g2 = grad(params, CFG.replace(remat=True))
  for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_padding_does_not_change_real_tokens(params):
  ids, mask = _batch(3, t=8)
  apply = jax.jit(Encoder(CFG).apply)  # jitted: a small model compiles quicker than it dispatches
  h1 = apply(params, ids, mask).last_hidden_state
  ids2 = np.pad(ids, ((0, 0), (0, 24)), constant_values=CFG.pad_token_id)
  mask2 = np.pad(mask, ((0, 0), (0, 24)))
  h2 = apply(params, ids2, mask2).last_hidden_state
  real = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(h1)[real], np.asarray(h2)[:, :8][real], atol=1e-5)


def test_degenerate_rows_are_finite(params):
  ids, mask = _batch(4)
  mask[0] = 0  # an all-padding row
  mask[1] = 0
  mask[1, 0] = 1  # a one-token row
  out = jax.jit(_embed, static_argnums=0)(CFG, params, ids, mask)
  assert np.isfinite(np.asarray(out)).all()
  assert np.allclose(np.asarray(out)[0], 0.0)
  g = jax.jit(jax.grad(lambda p: jnp.sum(_embed(CFG, p, ids, mask))))(params)
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
  b = m.apply(
    params, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(1)}
  ).last_hidden_state
  np.testing.assert_allclose(a, Encoder(CFG).apply(params, ids, mask).last_hidden_state, atol=1e-6)
  assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-2


def test_config_validation():
  with pytest.raises(ValueError, match="not divisible"):
    EncoderConfig(hidden_size=30, num_heads=4)
  with pytest.raises(ValueError, match="relative_attention_num_buckets"):
    EncoderConfig(family="mpnet")
  with pytest.raises(ValueError, match="relative_attention_num_buckets"):
    EncoderConfig(family="bert", relative_attention_num_buckets=32)
  with pytest.raises(ValueError, match="unknown encoder family"):
    EncoderConfig(family="gpt")
  with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
    EncoderConfig.from_hf({"model_type": "gpt2"})


def _family(cfg, family):
  if family == "mpnet":
    return cfg.replace(
      family=family,
      pad_token_id=1,
      type_vocab_size=0,
      relative_attention_num_buckets=32,
      relative_max_distance=16,
    )
  return cfg.replace(family=family, pad_token_id=1 if family == "xlm-roberta" else 0)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
def test_packed_rows_equal_each_text_alone(family):
  """Texts packed end to end in one row (segment_ids) get the states, and the mean/CLS
  pooled vectors, they get alone: attention stays inside a text, positions restart (MPNet:
  its relative-position bias depends on j - i only, the same within a packed text)."""
  from optical_jax.models.pooling import pool_segments

  cfg = _family(CFG, family)
  rng = np.random.default_rng(4)
  lengths = [5, 1, 9, 3]
  texts = [rng.integers(5, cfg.vocab_size, size=n).astype(np.int32) for n in lengths]
  width = 24  # 18 real tokens, then padding
  ids = np.full((2, width), cfg.pad_token_id, np.int32)
  segs = np.zeros((2, width), np.int32)
  ids[0, :18] = np.concatenate(texts)
  segs[0, :18] = np.repeat(np.arange(1, 5), lengths)
  ids[1, :3] = texts[3]  # a second row with one text, to check rows stay apart
  segs[1, :3] = 1
  mask = (segs > 0).astype(np.int32)
  module = Encoder(cfg)
  params = module.init(jax.random.key(1), ids, mask)
  packed = np.asarray(module.apply(params, ids, mask, segment_ids=segs).last_hidden_state)
  pooled = {k: np.asarray(pool_segments(jnp.asarray(packed), segs, 6, k)) for k in ("mean", "cls")}
  start = 0
  for k, t in enumerate(texts):
    alone = np.asarray(
      module.apply(params, t[None], np.ones((1, len(t)), np.int32)).last_hidden_state
    )[0]
    np.testing.assert_allclose(packed[0, start : start + len(t)], alone, atol=1e-5)
    np.testing.assert_allclose(pooled["mean"][0, k], alone.mean(0), atol=1e-5)
    np.testing.assert_allclose(pooled["cls"][0, k], alone[0], atol=1e-5)
    start += len(t)
  np.testing.assert_allclose(packed[1, :3], packed[0, 15:18], atol=1e-5)
  assert np.all(pooled["mean"][0, 4:] == 0) and np.all(pooled["mean"][1, 1:] == 0)
  assert np.all(np.isfinite(packed))
