"""Issue 29's done-when at full size: from a clean clone with no ../shared beside it, fetch every
dataset from a local mirror of the upstreams, then run the recommended student's whole job.

  python scripts/fetch_and_train_from_mirror.py BOX [SHARED]   # SHARED: default ../shared/data

The mirror (tests/mirror_server.py, 127.0.0.1) serves the shared files under their upstream paths
(tests/data/test_fetch.py:mirror_of). Every dataset but AfriQA is fetched by the command with the
real pinned manifest; AfriQA through ``fetch.fetch`` with the mirror's hashes, because the shared
AfriQA files are filtered copies and the shared folder has no test split (the mirror serves
synthetic test files whose first two rows repeat train questions, so the reader drops 2 train
rows per language). Then, in ``BOX/clone`` (``git clone`` of this repository) with
``OPTICAL_JAX_DATA=BOX/data``: ``python train.py --config=configs/afriqa.py --workdir BOX/run``.
Prints each stage's time; the figures are in docs/USAGE.md ("Fetch the data").
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "data"), str(REPO)]

from mirror_server import Mirror  # noqa: E402
from test_fetch import mirror_of  # noqa: E402

from optical_jax.data import fetch  # noqa: E402
from optical_jax.data.fetch_manifest import DATASETS  # noqa: E402


def main(box: Path, shared: Path) -> int:
  if box.exists():
    shutil.rmtree(box)
  clone = box / "clone"
  subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
  assert not (box / "shared").exists()  # the clone's ../shared
  data = box / "data"
  files, datasets = mirror_of(shared)
  with Mirror(files) as m:
    start = time.time()
    names = [n for n in DATASETS if n != "afriqa"]
    env = dict(os.environ, PYTHONPATH=str(clone))
    cmd = [sys.executable, "-m", "optical_jax.commands.fetch_data", *names, "--root", str(data)]
    subprocess.run(cmd + ["--base_url", m.url], cwd=clone, env=env, check=True)
    fetch.fetch(["afriqa"], data, m.url, datasets=datasets)
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"fetch: {time.time() - start:.1f} s, {size / 1e6:.1f} MB", flush=True)
  env = {k: v for k, v in os.environ.items() if k != "OPTICAL_JAX_DATA"}
  env.update(OPTICAL_JAX_DATA=str(data), PYTHONPATH=str(clone))
  start = time.time()
  cmd = [sys.executable, "train.py", "--config=configs/afriqa.py", f"--workdir={box / 'run'}"]
  rc = subprocess.run(cmd, cwd=clone, env=env).returncode
  print(f"train.py: exit {rc}, {time.time() - start:.1f} s; results in {box / 'run'}", flush=True)
  return rc


if __name__ == "__main__":
  if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
  shared = Path(sys.argv[2]) if len(sys.argv) == 3 else REPO.parent / "shared" / "data"
  sys.exit(main(Path(sys.argv[1]).resolve(), shared))
