"""notebooks/quickstart.ipynb executes on CPU (on a tiny random checkpoint and collection)."""

import json
from pathlib import Path

import pytest

from hf_fixtures import make_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch, toy_collection):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  make_checkpoint(tmp_path / "model", "bert")
  coll = toy_collection(tmp_path)
  overrides = {
    "encoders": str(tmp_path / "model"),
    "collection.builder": "dir",
    "collection.source": str(coll),
    "distill.train.num_steps": 2,
    "distill.train.batch_size": 8,
    "distill.data.max_pairs_per_lang": 40,
    "distill.data.max_length": 32,
    "distill.data.buckets": [16, 32],
    "eval.bootstrap_samples": 100,
  }
  monkeypatch.setenv("OPTICAL_JAX_NOTEBOOK_OVERRIDES", json.dumps(overrides))
  monkeypatch.setenv("OPTICAL_JAX_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
  monkeypatch.setenv("PYTHONPATH", str(REPO))
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
  client = nbclient.NotebookClient(
    nb,
    timeout=900,
    kernel_name="python3",
    resources={"metadata": {"path": str(REPO / "notebooks")}},
  )
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert any("image/png" in o.get("data", {}) for o in outputs)
  assert any("| swa | low |" in o.get("data", {}).get("text/markdown", "") for o in outputs)
  assert (tmp_path / "work" / "results.csv").is_file()
