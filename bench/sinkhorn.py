"""``sinkhorn_loss_grad``: our batched OT loss with its gradient vs POT solving the same problems.

The problems: B bitext pairs whose token counts come from TICO-19 (the e5
tokenizer, special tokens excluded since they carry no mass). In
``sinkhorn_loss_grad`` the pairs come from one length bucket and both sides
are padded to it, as ``BitextBatcher`` builds every training batch; in
``sinkhorn_loss_grad_unbucketed`` pairs of any length are padded to the
bucket of the longest (up to 13x more padded area than real; POT never sees
padding, so this is the worst case for ours). d = 384 random
Gaussian token embeddings (their cosine costs are concentrated like e5's:
std ~0.05), uniform marginals, the Sinkhorn settings of ``configs/default.py``.

* **Ours:** ``jax.jit(jax.value_and_grad(ot_distillation_loss))`` w.r.t. the
  student embeddings, on the padded batch, with the training default
  ``differentiation="implicit"``. ``params`` also records ours without the
  gradient and with the cheaper ``fixed`` gradient.
* **Reference:** POT, ``ot.sinkhorn(a, b, M, reg, method="sinkhorn_log")``
  per pair in a Python loop on the unpadded problems, the same epsilon,
  threshold and iteration cap, including the cost matrices. POT computes no
  gradient, so it does strictly less work. Its stopping test is the L2 norm of
  the column-marginal error, checked every 10 iterations; ott's is the L1 norm
  every ``inner_iterations`` (10): for the same threshold POT stops no later.
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, time_calls
from bench.data import token_lengths
from bench.ot_step import sinkhorn_config

DIM = 384


def problems(settings: Settings, seed: int = 0, bucketed: bool = True) -> dict:
  """The batch, identical in every process: padded arrays, lengths and their source."""
  b = settings.pick(32, 32, 4)
  fo, en, source, width = token_lengths(b, seed, bucketed)
  rng = np.random.default_rng(seed)
  out = {"lengths_student": fo, "lengths_teacher": en, "source": source}
  if bucketed:
    out["lengths_bucket"] = width
  for side, lengths in (("student", fo), ("teacher", en)):
    pos = np.arange(width)[None, :]
    out[side] = rng.standard_normal((b, width, DIM)).astype(np.float32)
    out[f"{side}_mask"] = (pos < lengths[:, None] + 2).astype(np.int32)  # + [CLS]/[SEP]
    out[f"{side}_weights"] = ((pos >= 1) & (pos <= lengths[:, None])).astype(np.float32)
  return out


def _params(p: dict, settings: Settings) -> dict:
  return {
    "pairs": len(p["lengths_student"]),
    "dim": DIM,
    "mode": settings.mode,
    "bucketed": "lengths_bucket" in p,
    "lengths_source": p["source"],
    "student_tokens_mean": round(float(p["lengths_student"].mean()), 1),
    "teacher_tokens_mean": round(float(p["lengths_teacher"].mean()), 1),
    "student_padded_length": int(p["student"].shape[1]),
    "teacher_padded_length": int(p["teacher"].shape[1]),
  }


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _ours(settings, bucketed=True)


def ours_unbucketed(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _ours(settings, bucketed=False)


def pot(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _pot(settings, bucketed=True)


def pot_unbucketed(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _pot(settings, bucketed=False)


def _ours(settings: Settings, bucketed: bool) -> Side:
  import jax
  from optical_jax.losses.ot import ot_distillation_loss

  p = problems(settings, bucketed=bucketed)
  args = [
    jax.device_put(p[k])
    for k in ("teacher", "student_weights", "teacher_weights", "student_mask", "teacher_mask")
  ]
  student = jax.device_put(p["student"])

  def make(differentiation, grad=True):
    cfg = sinkhorn_config(differentiation)
    loss = lambda s, t, ws, wt, ms, mt: ot_distillation_loss(s, t, ws, wt, cfg, ms, mt)
    fn = jax.jit(jax.value_and_grad(loss, has_aux=True) if grad else loss)
    return lambda: jax.block_until_ready(fn(student, *args))

  main = make("implicit")
  first, times = time_calls(main, settings.warmup(), settings.reps(20, 5, 2))
  (loss, metrics), _ = main()
  extra_reps = settings.reps(5, 3, 1)
  fwd_first, fwd = time_calls(make("implicit", grad=False), 1, extra_reps)
  _, fixed = time_calls(make("fixed"), 1, extra_reps)
  cfg = sinkhorn_config("implicit")
  return Side(
    times,
    first,
    label="ours",
    device=device_string(jax.devices()[0].device_kind),
    params={
      **_params(p, settings),
      "differentiation": "implicit",
      "sinkhorn": {
        "epsilon": cfg.epsilon,
        "threshold": cfg.threshold,
        "max_iterations": cfg.max_iterations,
        "inner_iterations": cfg.inner_iterations,
      },
      "ours_loss": round(float(loss), 6),
      "ours_iterations_mean": round(float(metrics["iterations"]), 1),
      "ours_converged_fraction": round(float(metrics["converged"]), 3),
      "ours_forward_only_s": round(float(np.median(fwd)), 6),
      "ours_fixed_gradient_s": round(float(np.median(fixed)), 6),
    },
    info={},
  )


def _pot(settings: Settings, bucketed: bool) -> Side:
  try:
    import ot
  except ImportError as e:
    raise Unavailable(f"POT (`ot`) not importable: {e}") from e
  p = problems(settings, bucketed=bucketed)
  cfg = sinkhorn_config("implicit")
  pairs = []
  for i, (m, n) in enumerate(zip(p["lengths_student"], p["lengths_teacher"])):
    pairs.append((p["student"][i, 1 : 1 + m], p["teacher"][i, 1 : 1 + n]))
  stats = {}

  def solve_all():
    losses, iters = [], []
    for s, t in pairs:
      s = s / np.linalg.norm(s, axis=1, keepdims=True)
      t = t / np.linalg.norm(t, axis=1, keepdims=True)
      cost = 1.0 - s @ t.T
      a = np.full(len(s), 1.0 / len(s), np.float32)
      b = np.full(len(t), 1.0 / len(t), np.float32)
      plan, log = ot.sinkhorn(
        a,
        b,
        cost,
        cfg.epsilon,
        method="sinkhorn_log",
        stopThr=cfg.threshold,
        numItermax=cfg.max_iterations,
        log=True,
        warn=False,
      )
      losses.append(float(np.sum(plan * cost)))
      iters.append(int(log["niter"]) + 1)
    stats.update(loss=float(np.mean(losses)), iterations=float(np.mean(iters)))

  first, times = time_calls(solve_all, settings.warmup(), settings.reps(20, 5, 2))
  return Side(
    times,
    first,
    label=f"POT {ot.__version__} sinkhorn_log, per pair, float32, no gradient",
    params={
      "reference_loss": round(stats["loss"], 6),
      "reference_iterations_mean": round(stats["iterations"], 1),
    },
  )
