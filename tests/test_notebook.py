"""notebooks/quickstart.ipynb executes on CPU: the tiny AfriQA study on a tiny random encoder, with
the data root set (the fetch cell is skipped; tests/data/test_fetch.py fetches the same names from
a local mirror)."""

import json
from pathlib import Path

import pytest

from compile_flags import xla_flags

REPO = Path(__file__).resolve().parents[1]


def _source(nb) -> str:
  return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_notebook_fetches_installs_by_runtime_and_names_its_repository():
  """Without running it: the first cell takes the repository from REPO_URL (which the README
  names), installs jax[cuda12] on a GPU runtime and the constraints everywhere, and the study
  reads data the fetcher wrote."""
  nb = json.loads((REPO / "notebooks" / "quickstart.ipynb").read_text(encoding="utf-8"))
  code = _source(nb)
  assert 'REPO_URL = "' in code and "git clone -q {REPO_URL}" in code
  assert '"jax[cuda12]"' in code and "-c constraints.txt -r requirements.txt" in code
  assert 'fetch.fetch(["afriqa", "flores200", "tatoeba"]' in code
  assert 'tiny.get_config("afriqa_study")' in code
  assert "REPO_URL" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch, shared_data):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  overrides = {
    "distill.model": "random:tiny",
    "distill.retrieval.cache_dir": str(tmp_path / "cache"),
    "methods": "zero_shot,optical",
    "interpolations": "",
  }
  monkeypatch.setenv("OPTICAL_JAX_NOTEBOOK_OVERRIDES", json.dumps(overrides))
  monkeypatch.setenv("OPTICAL_JAX_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
  monkeypatch.setenv("OPTICAL_JAX_DATA", str(shared_data.resolve()))
  monkeypatch.setenv("PYTHONPATH", str(REPO))
  monkeypatch.setenv("XLA_FLAGS", xla_flags())  # one device, the tests' compile settings
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
  report = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
  assert report and "optical" in report[0] and "hau" in report[0]
  assert (tmp_path / "work" / "results.csv").is_file()
