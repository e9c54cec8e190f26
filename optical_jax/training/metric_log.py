"""Metric writers (``metrics.jsonl`` and TensorBoard, process 0 only) and a progress line."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, Optional

import jax

log = logging.getLogger(__name__)


class MetricWriter:
  """Appends one JSON object per logged step to ``<workdir>/metrics.jsonl`` and
  writes scalars to TensorBoard (``<workdir>/tensorboard``, via tensorboardX
  when installed). Only process 0 writes."""

  def __init__(self, workdir, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self.path = Path(workdir) / "metrics.jsonl"
    self._tb = None
    if self.active and tensorboard:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))
      except ImportError:
        log.warning("tensorboardX not installed: metrics go to metrics.jsonl only")

  def write(self, step: int, scalars: Dict[str, float]) -> None:
    if not self.active:
      return
    with open(self.path, "a", encoding="utf-8") as fh:
      fh.write(json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}}) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


class Progress:
  """``step 120/400 (30%) loss 0.412 | 3.1 steps/s | ETA 1m30s`` lines."""

  def __init__(self, total: int, start_step: int = 0):
    self.total, self.start_step = total, start_step
    self.t0 = time.time()

  def line(self, step: int, scalars: Dict[str, float]) -> str:
    done = max(step - self.start_step, 0)
    elapsed = max(time.time() - self.t0, 1e-9)
    rate = done / elapsed
    eta = (self.total - step) / rate if rate > 0 else math.inf
    shown = " ".join(
      f"{k} {v:.4g}"
      for k, v in scalars.items()
      if k in ("loss", "grad_norm", "converged", "iterations", "plan_entropy", "learning_rate")
    )
    eta_s = "?" if not math.isfinite(eta) else f"{int(eta // 60)}m{int(eta % 60):02d}s"
    return (
      f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%) {shown} | "
      f"{rate:.2f} steps/s | ETA {eta_s}"
    )


def check_finite(step: int, scalars: Dict[str, float], workdir: Optional[str] = None) -> None:
  """Raises FloatingPointError naming the step and the metric when one is NaN or inf."""
  bad = {k: v for k, v in scalars.items() if not math.isfinite(float(v))}
  if bad:
    where = f"; the last good checkpoint is under {workdir}/checkpoints" if workdir else ""
    raise FloatingPointError(
      f"non-finite metrics at step {step}: {bad}. Training stopped{where}. "
      "Try a lower learning rate, a larger epsilon, or grad_clip > 0."
    )
