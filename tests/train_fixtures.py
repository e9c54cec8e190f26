"""A small encoder and the sharded train step on it, shared by the training, unpadding and
distributed tests and by the multi-host worker (a subprocess, so plain functions, not fixtures).

``run_steps`` goes through ``training.jitted_step.sharded_step``, the factory ``fit`` uses."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh

from optical_jax.losses.ot import SinkhornConfig
from optical_jax.models import Encoder, EncoderConfig
from optical_jax.training import sharding
from optical_jax.training.jitted_step import sharded_step
from optical_jax.training.state import TrainState, make_optimizer
from optical_jax.losses.objectives import DistillSpec, make_loss

CFG = EncoderConfig(
  vocab_size=90,
  hidden_size=32,
  num_layers=2,
  num_heads=4,
  intermediate_size=64,
  max_position_embeddings=40,
)


def random_batch(seed, b=16, m=12, n=10):
  rng = np.random.default_rng(seed)
  out = {}
  for side, t in (("student", m), ("teacher", n)):
    lengths = rng.integers(1, t + 1, size=b)
    mask = (np.arange(t)[None] < lengths[:, None]).astype(np.int32)
    out[f"{side}_ids"] = np.where(mask == 1, rng.integers(2, CFG.vocab_size, (b, t)), 0).astype(
      np.int32
    )
    out[f"{side}_mask"] = mask
    out[f"{side}_weights"] = mask.astype(np.float32)
  return out


def run_steps(
  mesh, objective, steps=2, fsdp_min_size=2**16, batches=None, with_hlo=False, bank=False, repeats=1
):
  """``steps`` train steps on ``mesh`` (on ``batches`` if given, else ``random_batch(k)``). Returns
  ``(params, losses)``, plus the compiled program's text with ``with_hlo``. ``bank``: the
  contrastive term against a random 40-row English bank. ``repeats`` > 1: the same compiled step
  runs the steps that many times, each from the same initial state; returns a list of
  ``(params, losses)``, one per repeat."""
  batches = batches if batches is not None else [random_batch(k) for k in range(steps)]
  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  teacher = {"encoder": enc}
  extra = {}
  if bank:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(40, CFG.hidden_size)).astype(np.float32)
    teacher["english_bank"] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    batches = [
      dict(b, bank_index=rng.integers(0, 40, len(b["student_ids"])).astype(np.int32))
      for b in batches
    ]
    extra = dict(contrastive_weight=1.0, contrastive_negatives="bank")
  spec = DistillSpec(objective=objective, sinkhorn=SinkhornConfig(max_iterations=100), **extra)
  opt, _ = make_optimizer(1e-3, 10, 2, 0.01, 1.0)
  state = TrainState.create(jax.tree_util.tree_map(jnp.copy, {"encoder": enc}), opt, seed=0)
  step = sharded_step(
    mesh, make_loss(module, spec), opt, state, teacher, min_size=fsdp_min_size
  )  # the trainer's factory
  initial = jax.device_get(state)  # host arrays: each repeat's put makes fresh (donated) buffers
  runs, hlo = [], None
  for _ in range(repeats):
    state, frozen = step.put(initial, teacher)
    losses = []
    for batch in batches:
      batch = jax.device_put(batch, step.batch)
      if with_hlo and hlo is None:
        hlo = step.fn.lower(state, batch, frozen).compile().as_text()
      state, metrics = step(state, batch, frozen)
      losses.append(float(metrics["loss"]))
    runs.append((jax.device_get(state.params), losses))
  if repeats > 1:
    return runs
  return runs[0] + (hlo,) if with_hlo else runs[0]


def single_device_mesh():
  return Mesh(
    np.asarray(jax.devices()[:1]).reshape(1, 1),
    sharding.AXES,
    axis_types=(AxisType.Auto, AxisType.Auto),
  )
