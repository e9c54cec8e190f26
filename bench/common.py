"""What every benchmark shares: settings, timing, medians, peak RSS, rows, table, JSON.

A benchmark is a set of *sides*: ``ours`` and one or more references. Each
side runs in its own child process (``bench/run.py`` starts them), so its peak
RSS is its own and no library's thread pool (torch's OpenMP workers, XLA's
Eigen pool) competes with another's. A side function returns a :class:`Side`;
the parent pairs each reference with ``ours`` into one row (:func:`make_row`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import resource
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]


def data_dir() -> pathlib.Path:
  """Where real text is looked for: ``$BENCH_DATA``, else ``<repo>/../shared/data``."""
  return pathlib.Path(os.environ.get("BENCH_DATA") or REPO.parent / "shared" / "data")


def num_cores() -> int:
  """CPU cores this process may run on (the affinity mask, not the machine's total)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def cpu_model() -> str:
  """``model name`` from ``/proc/cpuinfo``, or ``unknown CPU``."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown CPU"


def device_string(device_kind: Optional[str] = None) -> str:
  """``<jax device_kind> | <CPU model> x<cores>`` (the accelerator part only when given)."""
  host = f"{cpu_model()} x{num_cores()} cores"
  return f"{device_kind} | {host}" if device_kind else host


def peak_rss_mb() -> float:
  """Peak resident set size of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclasses.dataclass(frozen=True)
class Settings:
  """Size mode of a run.

  Attributes:
    quick: fewer repetitions and smaller sizes (``--quick``: < 10 min on 2 cores).
    tiny: smoke-test sizes, models cut to 2 layers (hidden ``--tiny``).
    mfu_on_cpu: run ``gpu_mfu`` even on CPU, at tiny sizes (hidden; tests the code path).
  """

  quick: bool = False
  tiny: bool = False
  mfu_on_cpu: bool = False

  @property
  def mode(self) -> str:
    return "tiny" if self.tiny else "quick" if self.quick else "full"

  def pick(self, full, quick, tiny):
    """The value for the current mode (tiny wins over quick)."""
    return tiny if self.tiny else quick if self.quick else full

  def reps(self, full: int = 10, quick: int = 3, tiny: int = 2) -> int:
    return self.pick(full, quick, tiny)

  def warmup(self, full: int = 2, quick: int = 1, tiny: int = 1) -> int:
    return self.pick(full, quick, tiny)

  def to_args(self) -> List[str]:
    """Command-line flags that recreate these settings in a child process."""
    return (
      (["--quick"] if self.quick else [])
      + (["--tiny"] if self.tiny else [])
      + (["--mfu-on-cpu"] if self.mfu_on_cpu else [])
    )


class Unavailable(Exception):
  """A side cannot run here (a missing library, no data); the row says why, with a null time."""


@dataclasses.dataclass
class Side:
  """What one side of a benchmark measured.

  Attributes:
    times: seconds of each timed repetition (after the warm-up).
    first_s: seconds of the first warm-up call (includes compilation for jitted code).
    label: what this side is (for references: the row's ``reference``).
    params: sizes and settings to record in the row.
    info: values a reference needs from ``ours`` (e.g. the Sinkhorn iteration count).
    device: the device string (``ours`` sets it from JAX).
  """

  times: List[float]
  first_s: float
  label: str = ""
  params: Dict = dataclasses.field(default_factory=dict)
  info: Dict = dataclasses.field(default_factory=dict)
  device: str = ""

  @property
  def median(self) -> float:
    return statistics.median(self.times)


def time_calls(fn: Callable[[], object], warmup: int, reps: int) -> tuple:
  """Calls ``fn`` ``warmup`` times, then ``reps`` timed times.

  ``fn`` must return only when its work is done (block on device arrays).
  Returns ``(first_s, times)``: the first warm-up call's seconds and each
  timed call's seconds.
  """
  if reps < 1:
    raise ValueError(f"reps must be >= 1, got {reps}")
  first = None
  for _ in range(max(warmup, 0)):
    t = time.perf_counter()
    fn()
    if first is None:
      first = time.perf_counter() - t
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return (first if first is not None else times[0]), times


def _round(x: Optional[float], digits: int = 6) -> Optional[float]:
  return None if x is None else round(float(x), digits)


def make_row(
  name: str,
  ours: Optional[dict],
  ref: Optional[dict],
  reference: str,
  device: str,
  error: Optional[str] = None,
) -> dict:
  """One output row from the child results of ``ours`` and one reference.

  ``ours``/``ref`` are :func:`side_result` dicts (or None when that side did
  not run). ``reference_s`` and ``ratio`` are null when the reference did not
  run; ``ratio = reference_s / ours_s`` (> 1: ours is faster).
  """
  ours_s = _round(statistics.median(ours["times"])) if ours and ours.get("times") else None
  ref_s = _round(statistics.median(ref["times"])) if ref and ref.get("times") else None
  params = dict(ours.get("params", {})) if ours else {}
  if ref:
    params.update(
      {f"reference_{k}" if k in params else k: v for k, v in ref.get("params", {}).items()}
    )
  params["times_s"] = {
    "ours": [_round(t) for t in ours["times"]] if ours else None,
    "reference": [_round(t) for t in ref["times"]] if ref and ref.get("times") else None,
  }
  params["first_call_s"] = {
    "ours": _round(ours.get("first_s")) if ours else None,
    "reference": _round(ref.get("first_s")) if ref and ref.get("times") else None,
  }
  row = {
    "name": name,
    "ours_s": ours_s,
    "reference": reference,
    "reference_s": ref_s,
    "ratio": round(ref_s / ours_s, 3) if ours_s and ref_s else None,
    "peak_rss_mb": ours.get("peak_rss_mb") if ours else None,
    "reference_peak_rss_mb": ref.get("peak_rss_mb") if ref and ref.get("times") else None,
    "device": device,
    "params": params,
  }
  if error:
    row["error"] = error
  return row


def side_result(side: Side) -> dict:
  """A :class:`Side` as the JSON a child process hands back (peak RSS added here)."""
  return {
    "times": side.times,
    "first_s": side.first_s,
    "label": side.label,
    "params": side.params,
    "info": side.info,
    "device": side.device,
    "peak_rss_mb": peak_rss_mb(),
  }


def write_json(path, obj) -> None:
  """Writes ``obj`` as indented JSON through a temporary file and ``os.replace``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump(obj, f, indent=2, ensure_ascii=False)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _fmt(x, spec: str = ".4g") -> str:
  return "-" if x is None else format(x, spec)


def format_table(rows: Sequence[dict]) -> str:
  """A Markdown table of the rows: times, ratio, peak RSS of both sides."""
  head = (
    "| benchmark | reference | ours s | reference s | ratio (ref/ours) | ours peak MB "
    "| ref peak MB |"
  )
  lines = [head, "|---|---|---|---|---|---|---|"]
  for r in rows:
    ref = r["reference"]
    if r.get("error"):
      ref = f"{ref} (ERROR: {r['error'].strip().splitlines()[-1][:120]})"
    lines.append(
      f"| {r['name']} | {ref} | {_fmt(r['ours_s'])} | {_fmt(r['reference_s'])} "
      f"| {_fmt(r['ratio'], '.3g')} | {_fmt(r['peak_rss_mb'], '.0f')} "
      f"| {_fmt(r.get('reference_peak_rss_mb'), '.0f')} |"
    )
  return "\n".join(lines)
