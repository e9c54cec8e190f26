"""Optimal-transport distillation (OPTICAL): the one module that calls ott-jax.

For a batch of bitext pairs, with student token embeddings ``S [B, m, d]`` of
the foreign sentence and frozen teacher token embeddings ``T [B, n, d]`` of
the English one:

* cost ``C[b, i, j] = 1 - cos(S[b, i], T[b, j])`` in ``[0, 2]``, NaN-safe for
  zero vectors (their cosine is 0, so their cost is 1);
* marginals ``a [B, m]``, ``b [B, n]``: the given token weights (uniform or
  IDF) restricted to the mask and normalised to mass 1; padding has exactly
  zero mass;
* ``P*`` = entropic OT plan from ott's ``Sinkhorn`` (log-domain, absolute
  epsilon), balanced or unbalanced (``tau < 1``);
* loss = ``<P*, C>_F`` per pair, averaged over pairs with at least one token
  on both sides (a pair with an empty side contributes 0 and no gradient).

Differentiation modes (``SinkhornConfig.differentiation``):

* ``"implicit"`` (default): exact gradient of ``<P*(C), C>`` at the fixed
  point by the implicit function theorem. ott's own ``ImplicitDiff`` divides
  by the marginals and returns NaN for zero-mass padding, so the adjoint
  system is solved here, restricted to real tokens: with ``r = P 1``,
  ``c = P^T 1``, ``u = (P*C) 1 / eps``, ``v = (P*C)^T 1 / eps``, solve
  ``[[diag r, P], [P^T, diag c]] [x; y] = [u; v]`` (Schur complement on ``y``,
  gauge fixed by a rank-one term), then
  ``dL/dC = P * (1 + x_i + y_j - C / eps)``. Cost: one dense ``n x n`` solve
  per pair. Balanced problems only.
* ``"unrolled"``: backpropagation through the Sinkhorn iterations (ott's
  checkpointed fixed-point loop); memory grows with iterations.
* ``"fixed"``: the plan is held fixed (``stop_gradient``), so the gradient is
  ``P*`` (Danskin's envelope gradient of the entropic OT cost); cheapest.

Why these defaults (also in ``configs/default.py``): the cosine cost between
multilingual-e5-small token states is concentrated (on TICO-19 so/en pairs:
range 0.06-0.38, std 0.05), so epsilon must be small in absolute terms.
Measured on one such batch (``plan_entropy_ratio``, 1 = no alignment; mean
Sinkhorn iterations): eps 0.05 -> 0.98, 10; 0.02 -> 0.90, 19; 0.01 -> 0.82, 44;
0.005 -> 0.74, 114; 0.002 -> 0.67, 229. The default 0.01 aligns tokens
visibly while converging in tens of iterations; threshold 1e-3 is ott's
default marginal error; 300 iterations cap the slowest pair of a vmapped batch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import acceleration, sinkhorn

DIFFERENTIATION = ("implicit", "unrolled", "fixed")
ACCELERATION = ("none", "adaptive")


@dataclasses.dataclass(frozen=True)
class SinkhornConfig:
  """Everything the OT call depends on.

  Attributes:
    epsilon: absolute entropic regularisation (cost units; cost is in [0, 2]).
    threshold: stop when the marginal error (L1) is below this.
    max_iterations: iteration cap per problem.
    inner_iterations: iterations between convergence checks.
    differentiation: ``"implicit"``, ``"unrolled"`` or ``"fixed"`` (module doc).
    tau: marginal relaxation; 1.0 = balanced, < 1 = unbalanced (KL penalty
      ``tau / (1 - tau) * eps``), which lets unmatched tokens shed mass.
    group_size: problems that share one Sinkhorn loop; 0 = the whole batch.
      Under ``vmap`` a loop runs until its slowest problem converges, so a
      batch is solved as groups of this many problems one after another
      (``lax.map``), each stopping at its own slowest. Same results (tested);
      on a 32-pair TICO-19 batch 8 took less than half the time of one loop
      of 32 (``docs/PERFORMANCE.md``). On GPUs/TPUs one loop may be better.
    acceleration: ``"none"`` (default, plain Sinkhorn) or ``"adaptive"``:
      over-relaxation (ott's ``Momentum`` with Lehmann et al. 2021's rule):
      after ``2 * inner_iterations`` plain iterations the potentials are
      updated as ``f <- (1 - w) f + w f_sinkhorn``, ``w`` in [1, 2) set once
      from the observed convergence rate. It reaches the same fixed point.
      Measured (``docs/PERFORMANCE.md``): on e5 token costs of 20 TICO-19
      batches (5 languages, epsilon 0.005-0.02, threshold 1e-3) it needed
      1.1-3.3x fewer iterations, loss within 1e-4 relative; but on a synthetic
      batch with a wider cost spread (std 0.13, epsilon 0.005) it needed 16x
      more. Hence opt-in. A fixed weight is not offered: 1.7 diverged on e5.
  """

  epsilon: float = 0.01
  threshold: float = 1e-3
  max_iterations: int = 300
  inner_iterations: int = 10
  differentiation: str = "implicit"
  tau: float = 1.0
  acceleration: str = "none"
  group_size: int = 8

  @classmethod
  def from_mapping(cls, fields, **overrides) -> "SinkhornConfig":
    """From any mapping holding these field names (e.g. ``config.ot``; its other keys, such
    as ``weighting``, are ignored), with ``overrides`` on top. Missing fields keep defaults."""
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**{**{k: fields[k] for k in names if k in fields}, **overrides})

  def __post_init__(self):
    if self.differentiation not in DIFFERENTIATION:
      raise ValueError(f"differentiation {self.differentiation!r} not in {DIFFERENTIATION}")
    if not self.epsilon > 0:
      raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
    if not 0 < self.tau <= 1:
      raise ValueError(f"tau must be in (0, 1], got {self.tau}")
    if self.differentiation == "implicit" and self.tau < 1:
      raise ValueError(
        "implicit differentiation is implemented for balanced OT (tau=1); use "
        "differentiation='unrolled' or 'fixed' with tau < 1"
      )
    if self.acceleration not in ACCELERATION:
      raise ValueError(f"acceleration {self.acceleration!r} not in {ACCELERATION}")
    if self.group_size < 0:
      raise ValueError(f"group_size must be >= 0 (0 = one group), got {self.group_size}")
    if self.max_iterations < self.inner_iterations:
      raise ValueError("max_iterations must be >= inner_iterations")


def cosine_cost(x: jax.Array, y: jax.Array, eps: float = 1e-8) -> jax.Array:
  """``1 - cos`` between rows. x [..., m, d], y [..., n, d] -> [..., m, n] (float32 or wider).

  Norms are floored at ``eps``, so a zero vector has cosine 0 with everything
  (cost 1) and finite gradients.
  """
  dtype = jnp.promote_types(jnp.promote_types(x.dtype, y.dtype), jnp.float32)
  x = x.astype(dtype)
  y = y.astype(dtype)
  xn = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), eps * eps))
  yn = y * jax.lax.rsqrt(jnp.maximum(jnp.sum(y * y, -1, keepdims=True), eps * eps))
  return 1.0 - jnp.einsum("...md,...nd->...mn", xn, yn)


def masked_marginal(weights: jax.Array, mask: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """Normalises ``weights [..., m]`` over ``mask`` to mass 1.

  Returns ``(marginal, nonempty)``; an all-masked row gives a uniform dummy
  marginal (so the solver stays finite) and ``nonempty = False``.
  """
  dtype = jnp.promote_types(weights.dtype, jnp.float32)
  w = jnp.where(mask.astype(bool), jnp.maximum(weights.astype(dtype), 0.0), 0.0)
  total = jnp.sum(w, -1, keepdims=True)
  nonempty = total[..., 0] > 0
  uniform = jnp.ones_like(w) / w.shape[-1]
  return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), uniform), nonempty


def _solver(cfg: SinkhornConfig) -> sinkhorn.Sinkhorn:
  momentum = None
  if cfg.acceleration == "adaptive":  # ott reads the errors of the two checks before `start`
    momentum = acceleration.Momentum(
      start=2 * cfg.inner_iterations, inner_iterations=cfg.inner_iterations
    )
  return sinkhorn.Sinkhorn(
    lse_mode=True,
    threshold=cfg.threshold,
    max_iterations=cfg.max_iterations,
    inner_iterations=cfg.inner_iterations,
    implicit_diff=None,
    momentum=momentum,
  )


def solve_plan(cost: jax.Array, a: jax.Array, b: jax.Array, cfg: SinkhornConfig):
  """One entropic OT problem. cost [m, n], a [m], b [n] -> (plan [m, n], stats dict)."""
  geom = geometry.Geometry(cost_matrix=cost, epsilon=cfg.epsilon)
  prob = linear_problem.LinearProblem(geom, a=a, b=b, tau_a=cfg.tau, tau_b=cfg.tau)
  out = _solver(cfg)(prob)
  plan = out.matrix
  stats = {
    "converged": out.converged.astype(jnp.float32),
    "iterations": jnp.asarray(out.n_iters, jnp.float32),
  }
  return plan, stats


def _adjoint_grad(plan: jax.Array, cost: jax.Array, epsilon: float) -> jax.Array:
  """dL/dC of L = <P*(C), C> by implicit differentiation (module doc). [m, n] -> [m, n]."""
  tiny = 1e-30
  r = jnp.sum(plan, 1)
  c = jnp.sum(plan, 0)
  real_r, real_c = r > tiny, c > tiny
  r_safe = jnp.where(real_r, r, 1.0)
  pc = plan * cost
  u = jnp.sum(pc, 1) / epsilon
  v = jnp.sum(pc, 0) / epsilon
  p_over_r = plan / r_safe[:, None]
  schur = jnp.diag(jnp.where(real_c, c, 1.0)) - plan.T @ p_over_r
  ones = real_c.astype(plan.dtype)
  scale = jnp.sum(c) / jnp.maximum(jnp.sum(ones), 1.0)
  schur = schur + scale * jnp.outer(ones, ones)
  # Sharp plans (small eps, near-identical sentences) make the system nearly singular;
  # a ridge of sqrt(machine eps) relative to the marginals keeps the solve finite and
  # leaves the well-determined combinations x_i + y_j (where P_ij > 0) accurate.
  ridge = jnp.sqrt(jnp.finfo(plan.dtype).eps) * scale
  schur = schur + ridge * jnp.eye(schur.shape[0], dtype=plan.dtype)
  rhs = jnp.where(real_c, v - p_over_r.T @ u, 0.0)
  y = jnp.linalg.solve(schur, rhs)
  x = jnp.where(real_r, (u - plan @ y) / r_safe, 0.0)
  return plan * (1.0 + x[:, None] + y[None, :] - cost / epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _implicit_cost(cost, a, b, cfg):
  plan, stats = solve_plan(cost, a, b, cfg)
  return jnp.sum(plan * cost), (plan, stats)


def _implicit_fwd(cost, a, b, cfg):
  plan, stats = solve_plan(cost, a, b, cfg)
  return (jnp.sum(plan * cost), (plan, stats)), (plan, cost, a, b)


def _implicit_bwd(cfg, res, g):
  plan, cost, a, b = res
  g_loss = g[0]  # cotangents of the (plan, stats) auxiliaries are ignored
  return g_loss * _adjoint_grad(plan, cost, cfg.epsilon), jnp.zeros_like(a), jnp.zeros_like(b)


_implicit_cost.defvjp(_implicit_fwd, _implicit_bwd)


def transport_cost(cost: jax.Array, a: jax.Array, b: jax.Array, cfg: SinkhornConfig):
  """``<P*, C>`` for one problem with the configured gradient. Returns (loss, plan, stats)."""
  if cfg.differentiation == "implicit":
    loss, (plan, stats) = _implicit_cost(cost, a, b, cfg)
    return loss, jax.lax.stop_gradient(plan), stats
  if cfg.differentiation == "fixed":
    plan, stats = solve_plan(jax.lax.stop_gradient(cost), a, b, cfg)
    plan = jax.lax.stop_gradient(plan)
    return jnp.sum(plan * cost), plan, stats
  plan, stats = solve_plan(cost, a, b, cfg)  # unrolled
  return jnp.sum(plan * cost), plan, stats


def transport_costs(cost: jax.Array, a: jax.Array, b: jax.Array, cfg: SinkhornConfig):
  """:func:`transport_cost` over a batch: cost [B, m, n], a [B, m], b [B, n] ->
  (losses [B], plans [B, m, n], stats of [B]).

  Solved in groups of ``cfg.group_size`` problems, one group after another,
  each group one vmapped Sinkhorn loop. Groups are strided (problem ``i`` is in
  group ``i % G``) so a batch split over devices in contiguous blocks stays
  split the same way inside every group. A last, partial group is filled with
  trivial problems (uniform marginals, constant cost) that are dropped.
  """
  one = jax.vmap(lambda c, x, y: transport_cost(c, x, y, cfg))
  n, size = cost.shape[0], cfg.group_size
  if size <= 0 or size >= n:
    return one(cost, a, b)
  groups = -(-n // size)
  pad = groups * size - n
  if pad:
    cost = jnp.concatenate([cost, jnp.ones((pad,) + cost.shape[1:], cost.dtype)])
    a = jnp.concatenate([a, jnp.full((pad, a.shape[1]), 1.0 / a.shape[1], a.dtype)])
    b = jnp.concatenate([b, jnp.full((pad, b.shape[1]), 1.0 / b.shape[1], b.dtype)])
  split = lambda x: jnp.swapaxes(x.reshape(size, groups, *x.shape[1:]), 0, 1)
  out = jax.lax.map(lambda args: one(*args), (split(cost), split(a), split(b)))
  merge = lambda x: jnp.swapaxes(x, 0, 1).reshape(groups * size, *x.shape[2:])[:n]
  return jax.tree_util.tree_map(merge, out)


def plan_entropy(plan: jax.Array) -> jax.Array:
  """Shannon entropy (nats) of a plan normalised to mass 1. [m, n] -> []."""
  p = plan / jnp.maximum(jnp.sum(plan), 1e-30)
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def _entropy(p: jax.Array) -> jax.Array:
  """Entropy (nats) along the last axis of a distribution with zeros. [..., m] -> [...]."""
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), -1)


def ot_distillation_loss(
  student: jax.Array,
  teacher: jax.Array,
  student_weights: jax.Array,
  teacher_weights: jax.Array,
  cfg: SinkhornConfig,
  student_mask: jax.Array | None = None,
  teacher_mask: jax.Array | None = None,
) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """OPTICAL loss for a batch.

  Args:
    student: [B, m, d] student token embeddings of the foreign sentences.
    teacher: [B, n, d] teacher token embeddings of the English sentences
      (the caller stops gradients into the teacher).
    student_weights, teacher_weights: [B, m], [B, n] non-negative token
      weights (1 for uniform, IDF values, 0 for padding or excluded tokens).
    cfg: the :class:`SinkhornConfig`.
    student_mask, teacher_mask: optional [B, m], [B, n]; default weights > 0.

  Returns:
    (loss [] float32, metrics): loss is the mean of ``<P*, C>`` over pairs
    with tokens on both sides; metrics hold ``ot_cost``, ``converged``
    (fraction of pairs), ``iterations`` (mean), ``plan_entropy`` (mean nats),
    ``plan_entropy_ratio`` (entropy over that of the independent coupling:
    1 = no alignment, lower = sharper), ``valid_pairs``.
  """
  if student_mask is None:
    student_mask = student_weights > 0
  if teacher_mask is None:
    teacher_mask = teacher_weights > 0
  a, a_ok = masked_marginal(student_weights, student_mask)
  b, b_ok = masked_marginal(teacher_weights, teacher_mask)
  valid = (a_ok & b_ok).astype(jnp.float32)
  cost = cosine_cost(student, teacher)
  # Padding entries carry no mass; a constant cost there keeps every number finite.
  pair_mask = (a[:, :, None] > 0) & (b[:, None, :] > 0)
  cost = jnp.where(pair_mask, cost, 1.0)
  losses, plans, stats = transport_costs(cost, a, b, cfg)
  n_valid = jnp.maximum(jnp.sum(valid), 1.0)
  loss = jnp.sum(losses * valid) / n_valid
  mean = lambda x: jnp.sum(x * valid) / n_valid
  metrics = {
    "ot_cost": loss,
    "converged": mean(stats["converged"]),
    "iterations": mean(stats["iterations"]),
    "plan_entropy": mean(jax.vmap(plan_entropy)(plans)),
    # 1.0 = the plan is the independent coupling a b^T (no alignment at all); lower = sharper.
    "plan_entropy_ratio": mean(
      jax.vmap(plan_entropy)(plans) / jnp.maximum(_entropy(a) + _entropy(b), 1e-9)
    ),
    "valid_pairs": jnp.sum(valid),
  }
  return loss, metrics
