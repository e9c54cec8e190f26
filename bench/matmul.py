"""Plain float32 matmul throughput, XLA against PyTorch, on this machine's CPU.

Usage::

  python bench/matmul.py [--json OUT.json]

The OT train step is mostly matmuls, so how its ratio to PyTorch comes out
depends on which library multiplies faster on the CPU at hand. This measures
that alone: ``jax.jit(a @ b)`` (and ``a.T @ b``, the shape of a weight
gradient) against ``torch`` (``torch.set_num_threads`` = the usable cores) for
the encoder's shapes (e5-small: 1,024 tokens x 384 / 1,536; mBERT-base: 768 /
3,072), median of 20 calls after 3 warm-ups, in GFLOP/s. JAX and torch run in
this one process, one after the other, never at the same time.
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import device_string, num_cores, write_json  # noqa: E402

#: (m, k, n): [m, k] @ [k, n]. Tokens x hidden -> hidden / FFN, both models.
SHAPES = (
  (1024, 384, 384),
  (1024, 384, 1536),
  (1024, 1536, 384),
  (1024, 768, 768),
  (1024, 768, 3072),
  (1024, 3072, 768),
)
REPS, WARMUP = 20, 3


def _median_s(fn) -> float:
  for _ in range(WARMUP):
    fn()
  times = []
  for _ in range(REPS):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def jax_rows() -> list:
  import jax
  import jax.numpy as jnp

  rng = np.random.default_rng(0)
  mm = jax.jit(lambda a, b: a @ b)
  mm_t = jax.jit(lambda a, b: a.T @ b)
  rows = []
  for m, k, n in SHAPES:
    a = jnp.asarray(rng.standard_normal((m, k)), jnp.float32)
    a_t = jnp.asarray(rng.standard_normal((k, m)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((k, n)), jnp.float32)
    flops = 2 * m * k * n
    rows.append(
      {
        "shape": [m, k, n],
        "jax_gflops": round(flops / _median_s(lambda: mm(a, b).block_until_ready()) / 1e9, 1),
        "jax_transposed_gflops": round(
          flops / _median_s(lambda: mm_t(a_t, b).block_until_ready()) / 1e9, 1
        ),
      }
    )
  return rows


def torch_rows():
  try:
    import torch
  except ImportError as e:
    return None, f"torch unavailable: {e}"
  torch.set_num_threads(num_cores())
  gen = torch.Generator().manual_seed(0)
  rows = []
  for m, k, n in SHAPES:
    a, a_t = torch.randn(m, k, generator=gen), torch.randn(k, m, generator=gen)
    b = torch.randn(k, n, generator=gen)
    flops = 2 * m * k * n
    with torch.inference_mode():
      rows.append(
        {
          "torch_gflops": round(flops / _median_s(lambda: a @ b) / 1e9, 1),
          "torch_transposed_gflops": round(flops / _median_s(lambda: a_t.T @ b) / 1e9, 1),
        }
      )
  return rows, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--json", help="write the rows here")
  args = parser.parse_args(argv)
  rows = jax_rows()
  extra, torch_label = torch_rows()
  for row, more in zip(rows, extra or [{}] * len(rows)):
    row.update(more)
  print(f"{device_string()}; {torch_label}")
  print("| m x k x n | XLA GFLOP/s | XLA a.T@b | torch GFLOP/s | torch a.T@b |")
  print("|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {' x '.join(map(str, r['shape']))} | {r['jax_gflops']} | {r['jax_transposed_gflops']} | "
      f"{r.get('torch_gflops', '-')} | {r.get('torch_transposed_gflops', '-')} |"
    )
  if args.json:
    write_json(args.json, {"device": device_string(), "torch": torch_label, "rows": rows})
  return 0


if __name__ == "__main__":
  sys.exit(main())
