"""``gpu_mfu``: tokens/s and model FLOPs utilisation of the mBERT-base-shaped OT step in bf16.

Runs only when ``jax.devices()[0].platform == "gpu"``; elsewhere the row is
skipped with the reason. The step is ``ot_step_mbert``'s (``train_step``
jitted as ``fit`` does, ``fixed`` plan gradient) with ``dtype="bfloat16"``
compute (fp32 parameters), every sequence ``SEQ_LEN`` real tokens, at a batch
that fills the device (``BATCH`` pairs, halved on an out-of-memory error; set
``BENCH_MFU_BATCH`` to choose another). Optimiser and Sinkhorn settings are
``configs/gpu.py``'s: one Sinkhorn loop for the batch (``group_size`` 0; set
``BENCH_MFU_GROUP_SIZE`` to time the CPU default's groups of 8 instead).

Model FLOPs per step (matmuls only; LayerNorm, softmax, the Sinkhorn loop and
the embedding-gradient scatter are not counted)::

  forward per token F = 2 * N + 4 * layers * SEQ_LEN * d       N = layers * (4 d^2 + 2 d f)
  step = B * SEQ_LEN * (3 F  [student forward + backward]  +  F  [frozen teacher forward])

MFU = step FLOPs / step seconds / the GPU's peak dense bf16 FLOP/s (``PEAK_BF16_TFLOPS``).

Reference (the issue's ">= 1.5x the PyTorch reference step on the same GPU"):
``ot_step_mbert``'s PyTorch step (``bench/ot_step.py``: ``transformers.BertModel``, batched
log-domain Sinkhorn, AdamW) with the encoders under ``torch.autocast(bfloat16)``, on the same
batch (ours' batch size after any out-of-memory halving) and ours' Sinkhorn iteration count,
on CUDA. Its own tokens/s and MFU (the same FLOP count) are in its ``params``. Under the
hidden ``--mfu-on-cpu`` both sides run tiny on the CPU to test the code path.
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import os
from typing import Optional

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, time_calls
from bench.ot_step import MBERT, TINY_LAYERS, build_ours_step, train_config

#: Peak dense (no sparsity) bf16 tensor-core TFLOP/s per GPU, from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {
  "H200": 989.4,  # H200 SXM (same tensor cores as H100 SXM)
  "H100 SXM": 989.4,  # device_kind e.g. "NVIDIA H100 80GB HBM3"
  "H100 NVL": 835.5,
  "H100 PCIe": 756.5,
  "A100": 312.0,  # SXM and PCIe alike
}
SEQ_LEN = 128
BATCH = 256
#: Vocabulary of the hidden ``--mfu-on-cpu`` smoke test (a GPU run keeps mBERT's).
CPU_VOCAB = 8192


def peak_tflops(device_kind: str) -> Optional[float]:
  """Peak bf16 TFLOP/s for a JAX ``device_kind``, or None for a GPU not in the table."""
  kind = device_kind.lower()
  if "h200" in kind:
    return PEAK_BF16_TFLOPS["H200"]
  if "h100" in kind:
    if "pcie" in kind:
      return PEAK_BF16_TFLOPS["H100 PCIe"]
    if "nvl" in kind:
      return PEAK_BF16_TFLOPS["H100 NVL"]
    return PEAK_BF16_TFLOPS["H100 SXM"]
  if "a100" in kind:
    return PEAK_BF16_TFLOPS["A100"]
  return None


def step_flops(batch: int, seq_len: int, layers: int, d: int, f: int) -> float:
  """Model FLOPs of one step (module docstring)."""
  n = layers * (4 * d * d + 2 * d * f)
  per_token = 2 * n + 4 * layers * seq_len * d
  return float(batch * seq_len * (3 * per_token + per_token))


def _batch(b: int, seq_len: int, vocab: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  out = {}
  for side in ("student", "teacher"):
    out[f"{side}_ids"] = rng.integers(5, vocab, size=(b, seq_len)).astype(np.int32)
    out[f"{side}_mask"] = np.ones((b, seq_len), np.int32)
    w = np.ones((b, seq_len), np.float32)
    w[:, [0, -1]] = 0.0  # [CLS]/[SEP] carry no OT mass
    out[f"{side}_weights"] = w
  return out


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import jax
  import jax.numpy as jnp
  from optical_jax.models.config import EncoderConfig
  from optical_jax.models.encoder import Encoder

  dev = jax.devices()[0]
  if dev.platform != "gpu" and not settings.mfu_on_cpu:
    raise Unavailable(
      f"jax.devices()[0].platform is {dev.platform!r}: gpu_mfu needs a GPU (install jax[cuda12])"
    )
  on_cpu = dev.platform != "gpu"
  tiny = settings.tiny or on_cpu
  # The CPU smoke test of the code path also cuts the vocabulary (CPU_VOCAB): mBERT's 119,547
  # embedding rows and their AdamW state dominate a 2-layer step there, on both sides.
  vocab = CPU_VOCAB if on_cpu else MBERT["vocab_size"]
  cfg = EncoderConfig(family="bert", dtype="bfloat16", **dict(MBERT, vocab_size=vocab))
  if tiny:
    cfg = cfg.replace(num_layers=TINY_LAYERS)
  seq_len = 32 if on_cpu else SEQ_LEN
  b = int(
    os.environ.get("BENCH_MFU_BATCH")
    or (4 if on_cpu else settings.pick(BATCH, BATCH // 2, BATCH // 4))
  )
  overrides = (
    {"group_size": int(os.environ["BENCH_MFU_GROUP_SIZE"])}
    if os.environ.get("BENCH_MFU_GROUP_SIZE")
    else {}
  )
  module = Encoder(cfg)
  ids = jnp.zeros((1, 8), jnp.int32)
  params = jax.jit(module.init)(jax.random.PRNGKey(0), ids, jnp.ones_like(ids))
  attempts = []
  while True:
    try:
      step, info, seen = build_ours_step(
        module, params, _batch(b, seq_len, vocab), config=train_config("gpu"), **overrides
      )
      first, times = time_calls(step, settings.warmup(3, 2, 1), settings.reps(10, 5, 2))
      break
    except Exception as e:  # pylint: disable=broad-except
      if "RESOURCE_EXHAUSTED" not in str(e) or b <= 8:
        raise
      attempts.append(f"batch {b}: out of memory")
      b //= 2
  seconds = float(np.median(times))
  flops = step_flops(b, seq_len, cfg.num_layers, cfg.hidden_size, cfg.intermediate_size)
  peak = peak_tflops(dev.device_kind) if not on_cpu else None
  params_out = {
    "model": f"mBERT-base shape, random init, bf16 compute{' (tiny, on CPU)' if on_cpu else ''}",
    "layers": cfg.num_layers,
    "vocab_size": vocab,
    "batch_size": b,
    "seq_len": seq_len,
    "mode": settings.mode,
    "tokens_per_s": round(b * seq_len / seconds, 1),
    "tokens_per_s_both_sides": round(2 * b * seq_len / seconds, 1),
    "model_tflops_per_step": round(flops / 1e12, 4),
    "achieved_tflops": round(flops / seconds / 1e12, 3),
    "peak_bf16_tflops": peak,
    "mfu": round(flops / seconds / (peak * 1e12), 4) if peak else None,
    "oom_retries": attempts,
    "sinkhorn_iterations_max": info["sinkhorn_iterations_max"],
    "sinkhorn": info["sinkhorn"],
  }
  if peak is None:
    params_out["mfu_note"] = (
      f"no peak FLOP/s known for {dev.device_kind!r}; see PEAK_BF16_TFLOPS"
      if not on_cpu
      else "CPU smoke test of the code path: no MFU"
    )
  del seen
  return Side(
    times,
    first,
    label="none (absolute: tokens/s and MFU)",
    device=device_string(dev.device_kind),
    params=params_out,
    info={
      "batch_size": b,
      "seq_len": seq_len,
      "layers": cfg.num_layers,
      "vocab_size": vocab,
      "peak": peak,
      "sinkhorn_iterations": info["sinkhorn_iterations_max"],
    },
  )


def torch_bf16(settings: Settings, ours_info=None) -> Side:
  """The PyTorch reference step in bf16 autocast on ours' batch (module docstring)."""
  from bench.ot_step import build_torch_step, import_torch, mbert_hf_config

  torch, transformers = import_torch()
  if not ours_info or "sinkhorn_iterations" not in ours_info:
    raise RuntimeError(
      "the torch reference needs ours' batch and Sinkhorn iterations; ours did not run"
    )
  device = "cuda" if torch.cuda.is_available() else "cpu"
  if device == "cpu" and not settings.mfu_on_cpu:
    raise Unavailable("torch sees no CUDA device")
  torch.manual_seed(0)
  b, seq_len, layers = ours_info["batch_size"], ours_info["seq_len"], ours_info["layers"]
  hf_config = dict(mbert_hf_config(layers), vocab_size=ours_info["vocab_size"])
  step, extra = build_torch_step(
    torch,
    transformers,
    hf_config,
    None,
    _batch(b, seq_len, ours_info["vocab_size"]),
    int(ours_info["sinkhorn_iterations"]),
    device=device,
    autocast="bfloat16",
  )

  def run():
    loss = step()  # float(): already a host sync
    if device == "cuda":
      torch.cuda.synchronize()
    return loss

  # On the CPU (the hidden --mfu-on-cpu smoke test) one timed step: torch's bf16 autocast is
  # emulated there (about 5 s a step), and the row only tests the code path.
  warmup, reps = (0, 1) if device == "cpu" else (settings.warmup(3, 2, 1), settings.reps(10, 5, 2))
  first, times = time_calls(run, warmup, reps)
  seconds = float(np.median(times))
  flops = step_flops(b, seq_len, layers, MBERT["hidden_size"], MBERT["intermediate_size"])
  peak = ours_info.get("peak")
  label = (
    f"torch {torch.__version__} transformers {transformers.__version__} BertModel, bf16 "
    f"autocast ({device}), {ours_info['sinkhorn_iterations']} log-domain Sinkhorn "
    "iterations, 'fixed' plan, AdamW"
  )
  return Side(
    times,
    first,
    label=label,
    params={
      "reference_device": device,
      "reference_batch_size": b,
      "reference_tokens_per_s": round(b * seq_len / seconds, 1),
      "reference_achieved_tflops": round(flops / seconds / 1e12, 3),
      "reference_mfu": round(flops / seconds / (peak * 1e12), 4) if peak else None,
      **extra,
    },
  )
