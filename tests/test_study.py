"""study.py on the gap study (optical_jax/studies/): cells, resumption, results.csv / report.md /
gap.png."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from compile_flags import xla_flags
from hf_fixtures import make_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_study_end_to_end_and_resume(tmp_path, toy_collection):
  make_checkpoint(tmp_path / "model", "bert")
  coll = toy_collection(tmp_path)
  work = tmp_path / "study"
  cmd = [
    sys.executable,
    str(REPO / "study.py"),
    f"--config={REPO / 'configs' / 'tiny.py'}:gap_study",
    f"--workdir={work}",
    f"--config.encoders={tmp_path / 'model'}",
    "--config.collection.builder=dir",
    f"--config.collection.source={coll}",
    "--config.distill.train.num_steps=2",
    "--config.distill.data.max_pairs_per_lang=40",
    "--config.distill.train.batch_size=8",
    "--config.eval.bootstrap_samples=100",
    "--config.distill.data.max_length=32",
    "--config.distill.data.buckets=16,32",
  ]
  env = {
    "PYTHONPATH": str(REPO),
    "PATH": "/usr/bin:/bin",
    "HOME": str(tmp_path),
    "XLA_FLAGS": xla_flags(),  # the tests' compile settings
  }
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  rows = list(csv.DictReader((work / "results.csv").open()))
  assert len(rows) == 3 * 4  # methods x languages
  assert {r["method"] for r in rows} == {"zero_shot", "kd_sentence", "optical"}
  assert all(0.0 <= float(r["MAP"]) <= 1.0 and r["queries"] == "20" for r in rows)
  report = (work / "report.md").read_text()
  assert "| swa | low |" in report and "| deu | high |" in report
  assert "change in gap vs zero-shot" in report and "Holm" in report
  assert (work / "gap.png").stat().st_size > 10_000
  cells = sorted((work / "cells").rglob("*.json"))
  stamps = [c.stat().st_mtime_ns for c in cells]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert [c.stat().st_mtime_ns for c in cells] == stamps  # finished cells are not recomputed
  assert "all 4 languages done" in proc.stderr


@pytest.mark.slow
def test_a_study_stops_cleanly_on_sigterm_and_resumes(tmp_path, toy_collection):
  """SIGTERM while a cell trains: the study ends with the cell's one line and exit 75, its lock
  released; the same command then resumes the cell and finishes the study."""
  coll = toy_collection(tmp_path)
  work = tmp_path / "study"
  cmd = [
    sys.executable,
    str(REPO / "study.py"),
    f"--config={REPO / 'configs' / 'tiny.py'}:gap_study",
    f"--workdir={work}",
    "--config.encoders=random:tiny",
    "--config.methods=zero_shot,optical",
    "--config.collection.builder=dir",
    f"--config.collection.source={coll}",
    "--config.distill.train.num_steps=4",
    "--config.distill.train.checkpoint_every=1000",
    "--config.distill.data.max_pairs_per_lang=40",
    "--config.distill.train.batch_size=8",
    "--config.eval.bootstrap_samples=100",
    "--config.distill.data.max_length=32",
    "--config.distill.data.buckets=32,",  # one compiled train step per process
  ]
  env = {
    "PYTHONPATH": str(REPO),
    "PATH": "/usr/bin:/bin",
    "HOME": str(tmp_path),
    "XLA_FLAGS": xla_flags(),  # the tests' compile settings
  }
  term = dict(env, OPTICAL_JAX_SIGTERM_AT_STEP="2")
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=term)
  assert proc.returncode == 75, proc.stderr[-4000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last == "study: preempted at step 2; rerun the same command to resume", last
  assert not (tmp_path / ".study.lock").exists() and not (work / "results.csv").exists()
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "checkpoint: resumed from step 2" in proc.stderr
  assert len(list(csv.DictReader((work / "results.csv").open()))) == 2 * 4
