"""The OT distillation loss, tested the way ott-jax tests itself: against POT,
padding as zero mass, jit vs no jit, implicit vs unrolled vs finite differences,
and finite values on degenerate inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from optical_jax.losses.ot import (
  SinkhornConfig,
  cosine_cost,
  ot_distillation_loss,
  solve_plan,
  transport_cost,
)

ot = pytest.importorskip("ot", reason="POT is the reference solver (pip install pot)")

# Jitted once per config; the jit-vs-eager test below calls the plain function.
LOSS = jax.jit(ot_distillation_loss, static_argnums=(4,))
# d loss / d student, compiled as one program per config and shapes (an eager grad of LOSS traces
# and compiles its linearisation and transpose again for every new lambda).
GRAD = jax.jit(
  jax.grad(lambda s, t, ws, wt, cfg: ot_distillation_loss(s, t, ws, wt, cfg)[0]),
  static_argnums=(4,),
)
TIGHT = dict(threshold=1e-7, max_iterations=5000, inner_iterations=10)


def _emb(rng, *shape):
  return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _mask(lengths, width):
  return jnp.asarray((np.arange(width)[None] < np.asarray(lengths)[:, None]).astype(np.float32))


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5])
def test_plan_matches_pot(eps):
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(7, 16)), rng.normal(size=(5, 16))
  cost = np.asarray(cosine_cost(jnp.asarray(x), jnp.asarray(y)), np.float64)
  a = rng.uniform(0.5, 1.5, 7)
  a /= a.sum()
  b = np.full(5, 0.2)
  ref = ot.sinkhorn(a, b, cost, reg=eps, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
  with enable_x64():
    plan, stats = solve_plan(
      jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b), SinkhornConfig(epsilon=eps, **TIGHT)
    )
  assert stats["converged"] == 1
  np.testing.assert_allclose(np.asarray(plan), ref, atol=1e-4)


def test_unbalanced_plan_matches_pot():
  """ott's tau = rho / (rho + eps) is POT's reg_m = rho (KL marginal penalty) with an entropy regulariser."""
  rng = np.random.default_rng(1)
  cost = np.asarray(
    cosine_cost(jnp.asarray(rng.normal(size=(6, 8))), jnp.asarray(rng.normal(size=(4, 8)))),
    np.float64,
  )
  a, b = np.full(6, 1 / 6), np.full(4, 1 / 4)
  eps, tau = 0.1, 0.8
  rho = tau * eps / (1 - tau)
  ref = ot.unbalanced.sinkhorn_unbalanced(
    a,
    b,
    cost,
    reg=eps,
    reg_m=rho,
    reg_type="entropy",
    method="sinkhorn_stabilized",
    stopThr=1e-12,
    numItermax=100000,
  )
  with enable_x64():
    plan, _ = solve_plan(
      jnp.asarray(cost),
      jnp.asarray(a),
      jnp.asarray(b),
      SinkhornConfig(epsilon=eps, tau=tau, differentiation="fixed", **TIGHT),
    )
  np.testing.assert_allclose(np.asarray(plan), ref, atol=1e-4)


@pytest.mark.parametrize(
  "pads", [pytest.param(((3, 0), (0, 9)), marks=pytest.mark.slow), ((11, 4),)]
)
def test_padding_gives_unpadded_answer_and_no_padding_dependence(pads):
  """Padding on either side or both (holding garbage): the unpadded loss and gradient, and no
  gradient into the padding. (The quick case pads both sides.)"""
  rng = np.random.default_rng(2)
  s, t = _emb(rng, 1, 5, 8), _emb(rng, 1, 3, 8)
  cfg = SinkhornConfig(**TIGHT)
  loss0, _ = LOSS(s, t, jnp.ones((1, 5)), jnp.ones((1, 3)), cfg)
  g0 = GRAD(s, t, jnp.ones((1, 5)), jnp.ones((1, 3)), cfg)
  for pad_s, pad_t in pads:
    sp = jnp.concatenate([s, _emb(rng, 1, pad_s, 8)], 1)  # padding holds garbage, not zeros
    tp = jnp.concatenate([t, _emb(rng, 1, pad_t, 8)], 1)
    ws, wt = _mask([5], 5 + pad_s), _mask([3], 3 + pad_t)
    loss, _ = LOSS(sp, tp, ws, wt, cfg)
    # float32 sums over padded vs unpadded rows: 1.6e-6 apart (2.4e-6 relative) on the AVX2 AMD
    # machine of 2026-12-07, under 1e-6 on AVX-512 ones
    np.testing.assert_allclose(loss, loss0, rtol=1e-5, atol=1e-6)
    g = GRAD(sp, tp, ws, wt, cfg)
    np.testing.assert_allclose(g[:, :5], g0, atol=1e-5)
    assert np.all(np.asarray(g[:, 5:]) == 0)


@pytest.mark.parametrize(
  "mode",
  [
    pytest.param("implicit", marks=pytest.mark.slow),  # op by op through ott's solver: 10 s
    pytest.param("unrolled", marks=pytest.mark.slow),
    # every other test here runs the loss jitted, against POT or a reference: the eager run is
    # for the full suite
    pytest.param("fixed", marks=pytest.mark.slow),
  ],
)
def test_jit_equals_no_jit(mode):
  rng = np.random.default_rng(3)
  s, t = _emb(rng, 3, 6, 8), _emb(rng, 3, 4, 8)
  ws, wt = _mask([6, 2, 4], 6), _mask([4, 4, 1], 4)
  cfg = SinkhornConfig(differentiation=mode)
  f = lambda s: ot_distillation_loss(s, t, ws, wt, cfg)[0]
  l1, g1 = jax.value_and_grad(f)(s)
  l2, g2 = jax.jit(jax.value_and_grad(f))(s)
  np.testing.assert_allclose(l1, l2, rtol=1e-5)
  np.testing.assert_allclose(g1, g2, atol=1e-5)


def test_implicit_unrolled_finite_difference_agree():
  """float64: implicit == unrolled to 1e-6; both == central differences to 1e-5 (relative)."""
  rng = np.random.default_rng(4)
  with enable_x64():
    s = jnp.asarray(rng.normal(size=(2, 6, 8)))
    t = jnp.asarray(rng.normal(size=(2, 5, 8)))
    ws, wt = _mask([6, 3], 6).astype(jnp.float64), _mask([5, 2], 5).astype(jnp.float64)
    grads = {}
    for mode in ("implicit", "unrolled"):
      cfg = SinkhornConfig(epsilon=0.1, differentiation=mode, threshold=1e-10, max_iterations=20000)
      f = lambda s: LOSS(s, t, ws, wt, cfg)[0]
      grads[mode] = GRAD(s, t, ws, wt, cfg)
    np.testing.assert_allclose(grads["implicit"], grads["unrolled"], atol=1e-6)
    d = jnp.asarray(rng.normal(size=s.shape))
    h = 1e-5
    fd = (f(s + h * d) - f(s - h * d)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(grads["implicit"] * d), fd, rtol=1e-5)


def test_fixed_plan_gradient_is_the_plan():
  """Held-fixed plan: dL/dC = P*, exactly."""
  rng = np.random.default_rng(5)
  cost = cosine_cost(_emb(rng, 5, 8), _emb(rng, 4, 8))
  a, b = jnp.full(5, 0.2), jnp.full(4, 0.25)
  cfg = SinkhornConfig(differentiation="fixed")
  g = jax.grad(lambda c: transport_cost(c, a, b, cfg)[0])(cost)
  plan, _ = solve_plan(cost, a, b, cfg)
  np.testing.assert_allclose(g, plan, atol=1e-7)


@pytest.mark.parametrize(
  "mode", ["implicit", pytest.param("unrolled", marks=pytest.mark.slow), "fixed"]
)  # unrolled: the same forward pass as fixed, differentiated through the loop
def test_degenerate_inputs_are_finite(mode):
  rng = np.random.default_rng(6)
  d = 8
  s, t = _emb(rng, 5, 40, d), _emb(rng, 5, 40, d)
  s = s.at[1].set(t[1])  # identical sentences
  s = s.at[3].set(0.0)  # all-zero embeddings
  ws = _mask([1, 40, 0, 40, 40], 40)  # one token; identical; all padding; zeros; long
  wt = _mask([1, 40, 5, 3, 1], 40)  # ...; very long vs very short
  cfg = SinkhornConfig(differentiation=mode)
  f = lambda s, t: LOSS(s, t, ws, wt, cfg)
  (loss, metrics), g = jax.jit(jax.value_and_grad(f, has_aux=True))(s, t)
  assert np.isfinite(loss) and all(np.isfinite(v) for v in metrics.values())
  assert np.isfinite(np.asarray(g)).all()
  assert metrics["valid_pairs"] == 4  # the all-padding pair is left out of the mean
  assert np.all(np.asarray(g[2]) == 0)


def test_loss_semantics():
  """Identical sentences at small epsilon cost ~0; a pair with one token each
  costs exactly 1 - cos; the batch loss is the mean over valid pairs."""
  rng = np.random.default_rng(7)
  x = _emb(rng, 1, 6, 8)
  cfg = SinkhornConfig(epsilon=0.01, max_iterations=2000)
  loss, _ = LOSS(x, x, jnp.ones((1, 6)), jnp.ones((1, 6)), cfg)
  assert loss < 0.02
  u, v = _emb(rng, 1, 1, 8), _emb(rng, 1, 1, 8)
  loss, _ = LOSS(u, v, jnp.ones((1, 1)), jnp.ones((1, 1)), cfg)
  np.testing.assert_allclose(loss, cosine_cost(u, v)[0, 0, 0], rtol=1e-5)
  both = LOSS(
    jnp.concatenate([x, jnp.pad(u, ((0, 0), (0, 5), (0, 0)))]),
    jnp.concatenate([x, jnp.pad(v, ((0, 0), (0, 5), (0, 0)))]),
    _mask([6, 1], 6),
    _mask([6, 1], 6),
    cfg,
  )[0]
  single = [LOSS(x, x, jnp.ones((1, 6)), jnp.ones((1, 6)), cfg)[0], cosine_cost(u, v)[0, 0, 0]]
  np.testing.assert_allclose(both, np.mean(single), rtol=1e-4)


def test_idf_weights_shift_mass():
  """Weights are the marginals: a token with 3x the weight carries 3x the mass."""
  rng = np.random.default_rng(8)
  cost = cosine_cost(_emb(rng, 3, 8), _emb(rng, 2, 8))
  cfg = SinkhornConfig(**TIGHT)
  plan, _ = solve_plan(cost, jnp.asarray([3.0, 1.0, 1.0]) / 5, jnp.asarray([0.5, 0.5]), cfg)
  np.testing.assert_allclose(np.asarray(plan).sum(1), [0.6, 0.2, 0.2], atol=1e-5)


def test_config_validation():
  with pytest.raises(ValueError, match="differentiation 'magic'"):
    SinkhornConfig(differentiation="magic")
  with pytest.raises(ValueError, match="balanced OT"):
    SinkhornConfig(tau=0.5)
  with pytest.raises(ValueError, match="epsilon must be > 0"):
    SinkhornConfig(epsilon=0.0)


def test_cosine_cost_zero_vector_gradient():
  x = jnp.zeros((1, 2, 4))
  y = jnp.ones((1, 3, 4))
  c, g = jax.value_and_grad(lambda x: jnp.sum(cosine_cost(x, y)))(x)
  assert np.allclose(c, 6.0) and np.isfinite(np.asarray(g)).all()


@pytest.mark.slow  # the quick subset compares the two in test_implicit_unrolled_finite_difference_agree
def test_implicit_close_to_unrolled_in_float32_at_default_epsilon():
  """Sharp plans (eps 0.01, near-permuted sentences): the ridge-regularised adjoint stays finite
  and within 1% (relative norm) of backpropagation through the iterations."""
  rng = np.random.default_rng(9)
  t = _emb(rng, 4, 12, 16)
  w = jnp.ones((4, 12))
  for noise in (0.1, 1.0):
    s = t[:, ::-1] + noise * _emb(rng, 4, 12, 16)
    grads = {}
    for mode in ("implicit", "unrolled"):
      cfg = SinkhornConfig(epsilon=0.01, differentiation=mode, threshold=1e-5, max_iterations=3000)
      grads[mode] = jax.jit(jax.grad(lambda s: ot_distillation_loss(s, t, w, w, cfg)[0]))(s)
    err = jnp.linalg.norm(grads["implicit"] - grads["unrolled"]) / jnp.linalg.norm(
      grads["unrolled"]
    )
    assert err < 1e-2, (noise, float(err))


@pytest.mark.slow
def test_acceleration_reaches_the_plain_fixed_point_in_fewer_iterations():
  """Adaptive over-relaxation gives plain Sinkhorn's loss and gradient, and POT's plan, at
  epsilon 0.005 on concentrated costs like e5's, in fewer iterations."""
  rng = np.random.default_rng(11)
  base = rng.normal(size=(1, 32))
  s = _emb(rng, 4, 12, 32) * 0.6 + base  # a shared direction: cosines concentrated
  t = _emb(rng, 4, 9, 32) * 0.6 + base
  ws, wt = _mask([12, 7, 10, 3], 12), _mask([9, 9, 4, 6], 9)
  tight = dict(threshold=1e-5, max_iterations=20000, epsilon=0.005)
  plain_cfg, fast_cfg = SinkhornConfig(**tight), SinkhornConfig(acceleration="adaptive", **tight)
  assert plain_cfg.acceleration == "none"
  cost = cosine_cost(s, t)
  assert float(jnp.std(cost)) < 0.1
  plain, plain_m = LOSS(s, t, ws, wt, plain_cfg)
  fast, fast_m = LOSS(s, t, ws, wt, fast_cfg)
  assert plain_m["converged"] == 1 and fast_m["converged"] == 1
  assert float(fast_m["iterations"]) < 0.75 * float(plain_m["iterations"])
  np.testing.assert_allclose(fast, plain, rtol=1e-5)
  g_plain = GRAD(s, t, ws, wt, plain_cfg)
  g_fast = GRAD(s, t, ws, wt, fast_cfg)
  np.testing.assert_allclose(g_fast, g_plain, atol=1e-3 * float(jnp.max(jnp.abs(g_plain))))
  for i, (m, n) in enumerate([(12, 9), (7, 9), (10, 4), (3, 6)]):
    c = np.asarray(cost[i, :m, :n], np.float64)
    ref = ot.sinkhorn(
      np.full(m, 1 / m),
      np.full(n, 1 / n),
      c,
      reg=0.005,
      method="sinkhorn_log",
      stopThr=1e-12,
      numItermax=200000,
    )
    with enable_x64():
      plan, _ = solve_plan(
        jnp.asarray(c),
        jnp.full(m, 1 / m),
        jnp.full(n, 1 / n),
        SinkhornConfig(
          epsilon=0.005, threshold=1e-9, max_iterations=20000, acceleration="adaptive"
        ),
      )
    np.testing.assert_allclose(np.asarray(plan), ref, atol=1e-6)


@pytest.mark.parametrize(
  "mode, sizes",
  [
    ("implicit", (4,)),
    pytest.param("implicit", (1, 2), marks=pytest.mark.slow),
    pytest.param("unrolled", (1, 2, 4), marks=pytest.mark.slow),
    pytest.param("fixed", (1, 2, 4), marks=pytest.mark.slow),
  ],
)
def test_groups_give_the_one_loop_answer(mode, sizes):
  """Solving the batch as strided groups (one Sinkhorn loop each, the last group padded with
  trivial problems) gives the losses, metrics and gradients of one loop over the batch. (The
  quick case: groups of 4, the last one padded with 3 trivial problems.)"""
  rng = np.random.default_rng(12)
  s, t = _emb(rng, 5, 7, 16), _emb(rng, 5, 6, 16)
  ws, wt = _mask([7, 2, 5, 1, 0], 7), _mask([6, 6, 3, 2, 4], 6)  # the last pair is empty
  whole = SinkhornConfig(differentiation=mode, group_size=0)
  f = lambda x, cfg: LOSS(x, t, ws, wt, cfg)
  ref_loss, ref_m = f(s, whole)
  g_ref = GRAD(s, t, ws, wt, whole)
  for size in sizes:
    cfg = SinkhornConfig(differentiation=mode, group_size=size)
    loss, m = f(s, cfg)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    for k in ref_m:
      np.testing.assert_allclose(m[k], ref_m[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(GRAD(s, t, ws, wt, cfg), g_ref, atol=1e-6)
  assert SinkhornConfig().group_size == 8
  with pytest.raises(ValueError, match="group_size"):
    SinkhornConfig(group_size=-1)


def test_config_from_the_job_config():
  """Every field of config.ot that SinkhornConfig has reaches it; the rest is ignored."""
  from configs.default import get_config

  o = get_config().ot
  cfg = SinkhornConfig.from_mapping(o, differentiation="fixed")
  assert cfg.differentiation == "fixed"
  for name in (
    "epsilon",
    "threshold",
    "max_iterations",
    "inner_iterations",
    "tau",
    "acceleration",
    "group_size",
  ):
    assert getattr(cfg, name) == o[name], name
  assert SinkhornConfig.from_mapping({}) == SinkhornConfig()
