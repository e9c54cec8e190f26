"""Unpadded dense layers (``models/unpad.py``, ``data/token_plan.py``): the token layout, its
gathers and their VJPs, encoder and loss parity with the padded path, the batchers' token
plans, and the sharded step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.data import token_plan
from optical_jax.data.pipeline import BitextBatcher
from optical_jax.data.triples import Triple, TripleBatcher
from optical_jax.losses.ot import SinkhornConfig
from optical_jax.models import Encoder, EncoderConfig, unpad
from optical_jax.tokenization import Tokenizer
from optical_jax.losses.objectives import DistillSpec, make_loss

from hf_fixtures import _tokenizer

CFG = EncoderConfig(
  vocab_size=90,
  hidden_size=32,
  num_layers=2,
  num_heads=4,
  intermediate_size=48,
  max_position_embeddings=40,
)


def _mask(seed, b, t, empty_row=True):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, size=b)
  if empty_row:
    lengths[1] = 0  # a filler row, as the last batch of a bucket has
  return (np.arange(t)[None] < lengths[:, None]).astype(np.int32)


def _layout(mask, shards, multiple=4):
  cap = token_plan.round_capacity(
    int(token_plan.shard_counts(mask, shards).max()), multiple, mask.size // shards
  )
  ti = token_plan.token_index(mask, shards, cap)
  return ti, unpad.make_layout(jnp.asarray(mask), jnp.asarray(ti))


# ---------------------------------------------------------------- layout and gathers


def test_token_index_lists_real_positions_per_shard():
  mask = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], np.int32)
  np.testing.assert_array_equal(token_plan.token_index(mask, 1, 8), [[0, 1, 3, 9, 10, 11, -1, -1]])
  np.testing.assert_array_equal(token_plan.token_index(mask, 2, 4), [[0, 1, 3, -1], [3, 4, 5, -1]])
  np.testing.assert_array_equal(token_plan.shard_counts(mask, 2), [3, 3])
  with pytest.raises(ValueError, match="more than the planned capacity of 2"):
    token_plan.token_index(mask, 2, 2)
  with pytest.raises(ValueError, match="does not split into 3 shards"):
    token_plan.token_index(mask, 3, 8)


def test_round_capacity():
  assert token_plan.round_capacity(771, 16, 1024) == 784
  assert token_plan.round_capacity(0, 16, 1024) == 16
  assert token_plan.round_capacity(1020, 16, 1024) == 1024  # capped at the padded size
  assert token_plan.round_capacity(1000, 128, 1024) == 1024


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_round_trip_and_zeros(shards):
  mask = _mask(0, 8, 7)
  _, lay = _layout(mask, shards)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 7, 3)), jnp.float32)
  flat = unpad.to_flat(x, lay)
  assert flat.shape == (shards * lay.slots, 3)
  back = unpad.to_padded(flat, lay)
  np.testing.assert_array_equal(back, np.asarray(x) * mask[..., None])
  # slots past each shard's tokens are zero
  empty = ~np.asarray(lay.flat_valid).reshape(-1)
  assert empty.any() or shards == 1
  np.testing.assert_array_equal(np.asarray(flat)[empty], 0)
  jitted = jax.jit(lambda x, l: unpad.to_padded(unpad.to_flat(x, l), l))(x, lay)
  np.testing.assert_array_equal(jitted, back)


@pytest.mark.parametrize("shards", [1, 2])
def test_custom_vjps_equal_autodiff_of_plain_gathers(shards):
  """The gather-only VJPs equal JAX's own transposes (scatter-adds) of the same gathers."""
  mask = _mask(2, 6, 5)
  ti, lay = _layout(mask, shards)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((6, 5, 4)), jnp.float32)
  real = mask.reshape(shards, -1) > 0
  pad_index = np.maximum(np.cumsum(real, 1) - 1, 0)

  def plain_flat(x):
    rows = jax.vmap(lambda a, i: a[i])(x.reshape(shards, -1, 4), jnp.maximum(ti, 0))
    return jnp.where((ti >= 0)[..., None], rows, 0.0).reshape(-1, 4)

  def plain_padded(f):
    rows = jax.vmap(lambda a, i: a[i])(f.reshape(shards, -1, 4), pad_index)
    return jnp.where(real[..., None], rows, 0.0).reshape(6, 5, 4)

  w = jnp.asarray(rng.standard_normal((shards * lay.slots, 4)), jnp.float32)
  np.testing.assert_array_equal(
    jax.grad(lambda x: jnp.sum(unpad.to_flat(x, lay) * w))(x),
    jax.grad(lambda x: jnp.sum(plain_flat(x) * w))(x),
  )
  f = unpad.to_flat(x, lay)
  v = jnp.asarray(rng.standard_normal((6, 5, 4)), jnp.float32)
  np.testing.assert_array_equal(
    jax.grad(lambda f: jnp.sum(unpad.to_padded(f, lay) * v))(f),
    jax.grad(lambda f: jnp.sum(plain_padded(f) * v))(f),
  )


def test_shape_errors():
  mask = _mask(0, 4, 6)
  _, lay = _layout(mask, 2)
  with pytest.raises(ValueError, match="to_flat: expected leading shape"):
    unpad.to_flat(jnp.zeros((4, 5, 2)), lay)
  with pytest.raises(ValueError, match="to_padded: expected 2 x"):
    unpad.to_padded(jnp.zeros((3, 2)), lay)


# ---------------------------------------------------------------- encoder and losses


@pytest.mark.parametrize(
  "family,shards,options",
  [
    pytest.param("bert", 1, {}, marks=pytest.mark.slow),
    ("bert", 2, {"remat": True}),
    pytest.param("xlm-roberta", 2, {"layer_unroll": 1}, marks=pytest.mark.slow),
    pytest.param("mpnet", 2, {"remat": True}, marks=pytest.mark.slow),
  ],
)
def test_encoder_unpadded_equals_padded(family, shards, options):
  """Every real token's states (all layers) and the parameter gradients of a loss on them equal
  the padded encoder's (float32), in the unrolled, scanned and rematerialised layer loops."""
  cfg = CFG.replace(
    family=family,
    pad_token_id=0 if family == "bert" else 1,
    type_vocab_size={"bert": 2, "xlm-roberta": 1, "mpnet": 0}[family],
    relative_attention_num_buckets=32 if family == "mpnet" else 0,
    **options,
  )
  module = Encoder(cfg)
  mask = _mask(4, 8, 11)
  ids = np.where(
    mask > 0, np.random.default_rng(5).integers(5, 90, mask.shape), cfg.pad_token_id
  ).astype(np.int32)
  ti, _ = _layout(mask, shards)
  params = module.init(jax.random.PRNGKey(0), ids, mask)
  padded = jax.jit(lambda p: module.apply(p, ids, mask, output_hidden_states=True))(params)
  flat = jax.jit(lambda p: module.apply(p, ids, mask, output_hidden_states=True, token_index=ti))(
    params
  )
  real = mask[..., None].astype(bool)
  np.testing.assert_allclose(
    np.where(real, flat.last_hidden_state, 0),
    np.where(real, padded.last_hidden_state, 0),
    atol=2e-5,
  )
  np.testing.assert_array_equal(np.asarray(flat.last_hidden_state)[~mask.astype(bool)], 0)
  np.testing.assert_allclose(
    np.where(real[None], flat.hidden_states, 0),
    np.where(real[None], padded.hidden_states, 0),
    atol=2e-5,
  )

  def loss(p, index):
    h = module.apply(p, ids, mask, token_index=index).last_hidden_state
    return jnp.sum(jnp.where(real, jnp.sin(h), 0.0))

  g_pad = jax.jit(jax.grad(loss))(params, None)
  g_flat = jax.jit(jax.grad(loss))(params, ti)
  for a, b in zip(jax.tree_util.tree_leaves(g_pad), jax.tree_util.tree_leaves(g_flat)):
    assert np.abs(a).max() > 0 or np.abs(b).max() == 0
    np.testing.assert_allclose(b, a, atol=2e-5, rtol=1e-4)


def test_token_index_and_segment_ids_exclude_each_other():
  mask = _mask(0, 4, 6)
  ids = np.where(mask > 0, 7, 0).astype(np.int32)
  ti, _ = _layout(mask, 1)
  module = Encoder(CFG)
  params = module.init(jax.random.PRNGKey(0), ids, mask)
  with pytest.raises(ValueError, match="not both"):
    module.apply(params, ids, mask, segment_ids=mask, token_index=ti)


def _distill_batch(seed, b=8, m=12, n=10):
  rng = np.random.default_rng(seed)
  out = {}
  for side, t in (("student", m), ("teacher", n)):
    mask = _mask(seed + t, b, t)
    out[f"{side}_ids"] = np.where(mask == 1, rng.integers(2, CFG.vocab_size, (b, t)), 0).astype(
      np.int32
    )
    out[f"{side}_mask"] = mask
    out[f"{side}_weights"] = mask.astype(np.float32)
  return out


def _with_index(batch, shards, multiple=4):
  out = dict(batch)
  for side in ("student", "teacher"):
    out[f"{side}_token_index"] = _layout(batch[f"{side}_mask"], shards, multiple)[0]
  return out


def _with_common_index(batches, shards, multiple=4):
  """``_with_index`` for each batch, with one capacity per side (the largest any batch needs),
  as the data pipeline plans a bucket: one program for all the steps."""
  cap = {
    side: max(
      token_plan.round_capacity(
        int(token_plan.shard_counts(b[f"{side}_mask"], shards).max()),
        multiple,
        b[f"{side}_mask"].size // shards,
      )
      for b in batches
    )
    for side in ("student", "teacher")
  }
  return [
    dict(
      b,
      **{
        f"{side}_token_index": token_plan.token_index(b[f"{side}_mask"], shards, cap[side])
        for side in cap
      },
    )
    for b in batches
  ]


@pytest.mark.parametrize(
  "objective,layer",
  [
    pytest.param("optical", -1, marks=pytest.mark.slow),
    pytest.param("kd_token", -1, marks=pytest.mark.slow),
    # slow too: the quick subset checks the unpadded encoder and its custom VJPs above
    pytest.param("kd_sentence", -1, marks=pytest.mark.slow),
    pytest.param("kd_sentence", 1, marks=pytest.mark.slow),
  ],
)
def test_losses_and_gradients_unpadded_equal_padded(objective, layer):
  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(1), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  params = {"encoder": enc}
  spec = DistillSpec(objective=objective, layer=layer, sinkhorn=SinkhornConfig(max_iterations=100))
  loss_fn = make_loss(module, spec)
  batch = _distill_batch(0)
  grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (l_pad, m_pad), g_pad = grad(params, params, batch, jax.random.PRNGKey(0))
  (l_flat, m_flat), g_flat = grad(params, params, _with_index(batch, 2), jax.random.PRNGKey(0))
  np.testing.assert_allclose(l_flat, l_pad, rtol=1e-5)
  for k in m_pad:
    np.testing.assert_allclose(m_flat[k], m_pad[k], rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g_pad), jax.tree_util.tree_leaves(g_flat)):
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- token plans


def _tok():
  return Tokenizer(_tokenizer("bert", 99), pad_id=0, max_length=64)


def _pairs(n=60, seed=0):
  rng = np.random.default_rng(seed)
  word = lambda: "".join(rng.choice(list("abcdefgh"), size=rng.integers(1, 3)))
  sentence = lambda k: " ".join(word() for _ in range(k))
  return [
    (sentence(int(rng.integers(1, 30))), sentence(int(rng.integers(1, 30)))) for _ in range(n)
  ]


@pytest.mark.parametrize("shards", [1, 4])
def test_bitext_plan_covers_every_batch_of_the_run_and_is_tight(shards):
  batcher = BitextBatcher(
    _pairs(), _tok(), _tok(), batch_size=8, max_length=64, buckets=(8, 16, 32, 64)
  )
  steps = 3 * batcher.steps_per_epoch
  plan = batcher.plan_unpadded(steps, shards, multiple=4)
  widest = {}
  for step in range(steps):
    batch = batcher.batch(step)
    width = batch["student_ids"].shape[1]
    for side in ("student", "teacher"):
      index = batch[f"{side}_token_index"]
      n = plan.capacity[(width, side)]
      assert index.shape == (shards, n)
      counts = token_plan.shard_counts(batch[f"{side}_mask"], shards)
      np.testing.assert_array_equal((index >= 0).sum(1), counts)
      widest[(width, side)] = max(widest.get((width, side), 0), int(counts.max()))
  for key, most in widest.items():  # the fullest shard of the run, rounded up to 4
    assert plan.real_max[key] == most
    assert plan.capacity[key] == token_plan.round_capacity(most, 4, plan.positions[key])
  assert set(widest) == set(plan.capacity)
  assert "slots of" in plan.describe()


def test_bitext_batches_carry_bank_index():
  """Each row's bank_index is its pair's bank row; filler rows get -1; a wrong length is
  refused."""
  pairs = _pairs(21, seed=2)
  rows = np.arange(21) % 7
  batcher = BitextBatcher(
    pairs, _tok(), _tok(), batch_size=8, max_length=64, buckets=(64,), bank_index=rows
  )
  seen = []
  for step in range(batcher.steps_per_epoch):
    _, idx = batcher.members(step)
    got = batcher.batch(step)["bank_index"]
    assert got.dtype == np.int32 and got.shape == (8,)
    np.testing.assert_array_equal(got[: len(idx)], rows[idx])
    assert np.all(got[len(idx) :] == -1)
    seen += list(idx)
  assert sorted(seen) == list(range(21))
  assert "bank_index" not in BitextBatcher(pairs, _tok(), _tok(), batch_size=8).batch(0)
  with pytest.raises(ValueError, match="one row per pair"):
    BitextBatcher(pairs, _tok(), _tok(), batch_size=8, bank_index=rows[:5])


def test_triple_plan_covers_queries_and_documents():
  pairs = _pairs(40, seed=1)
  triples = [Triple(q, d, (pairs[(i + 1) % len(pairs)][1],)) for i, (q, d) in enumerate(pairs)]
  batcher = TripleBatcher(triples, _tok(), batch_size=8, max_query_length=16, max_doc_length=32)
  plan = batcher.plan_unpadded(2 * batcher.steps_per_epoch, 2, multiple=4)
  for step in range(2 * batcher.steps_per_epoch):
    batch = batcher.batch(step)
    for side in ("query", "doc"):
      counts = token_plan.shard_counts(batch[f"{side}_mask"], 2)
      assert batch[f"{side}_token_index"].shape == (2, plan.capacity[(0, side)])
      np.testing.assert_array_equal((batch[f"{side}_token_index"] >= 0).sum(1), counts)
      assert counts.max() <= plan.real_max[(0, side)]


# ---------------------------------------------------------------- sharded step


@pytest.mark.slow
@pytest.mark.parametrize("data,fsdp", [(8, 1), (4, 2)])
def test_unpadded_on_eight_devices_equals_padded_on_one(data, fsdp):
  """data=8, and data=4 x fsdp=2 with every parameter sharded; each device has its own token
  slots. The 3-step trajectory of the padded single-device step (1e-5 relative), and with
  replicated parameters no all-gather in the program (each gather stays on its device)."""
  from optical_jax.training import sharding
  from train_fixtures import run_steps, single_device_mesh

  batches = [_distill_batch(k, b=16) for k in range(3)]
  p1, l1 = run_steps(single_device_mesh(), "optical", batches=batches)
  p8, l8, hlo = run_steps(
    sharding.make_mesh(data=data, fsdp=fsdp),
    "optical",
    batches=_with_common_index(batches, 8),
    with_hlo=True,
    fsdp_min_size=1 if fsdp > 1 else 2**16,
  )
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p8)):
    np.testing.assert_allclose(b, a, atol=2e-6)
  if fsdp == 1:
    assert "all-gather" not in hlo
