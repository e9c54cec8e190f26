"""optical_jax/dev_eval.py: the zero-shot runs every cell keeps, and the command line (absl
flags, one-line errors)."""

import json

import ml_collections
import pytest

from optical_jax import dev_eval
from optical_jax.commands import recheck
from optical_jax.testsets.registry import load_collection
from optical_jax.loading import load_encoder


def test_zero_shot_from_the_cache_still_writes_its_runs(tmp_path, toy_collection):
  """The teacher's results are cached across runs; its TREC runs and per-query files are
  cached with them and copied into each run's folder, so every study cell keeps its runs."""
  collection = load_collection(toy_collection(tmp_path))
  teacher = load_encoder("random:tiny")
  config = ml_collections.ConfigDict(
    {
      "retrieval": {"k": 5, "doc_max_length": 32, "cache_dir": str(tmp_path / "cache")},
      "eval": {"batch_size": 8},
    }
  )
  args = (teacher, collection, ["swa", "deu"], "dense", config)
  first = dev_eval.zero_shot(*args, tmp_path / "run1" / "zero_shot")
  again = dev_eval.zero_shot(*args, tmp_path / "run2" / "zero_shot")  # a cache hit
  assert again == first
  names = ["per_query.deu.tsv", "per_query.swa.tsv", "run.deu.trec", "run.swa.trec"]
  for run in ("run1", "run2"):
    assert sorted(p.name for p in (tmp_path / run / "zero_shot").iterdir()) == names
  for name in names:
    assert (tmp_path / "run2/zero_shot" / name).read_text() == (
      tmp_path / "run1/zero_shot" / name
    ).read_text()


@pytest.mark.parametrize(
  "argv, code, message",
  [
    ([], 2, "Flag --workdir must have a value other than None"),
    (["--workdir=W", "--interpolation=half"], 2, "flag --interpolation"),
    (["--workdir=W", "extra"], 2, "unexpected arguments ['extra']"),
    (["--workdir=W"], 2, "no config.json; expected a train.py work directory"),
    (
      ["--workdir=W", "--evals=tatoeba", "--config"],
      2,
      "--evals: config.evals has no 'tatoeba'; it declares ('afriqa', 'flores_devtest')",
    ),
  ],
)
def test_command_line_errors_are_one_line(tmp_path, capsys, argv, code, message):
  if "--config" in argv:  # a finished run's config.json (recorded before config.evals existed)
    argv = argv[:-1]
    recorded = {"retrieval": {"collections": ["afriqa", "flores_devtest"]}, "method": "optical"}
    (tmp_path / "config.json").write_text(json.dumps(recorded))
  argv = [a.replace("=W", f"={tmp_path}") for a in argv]
  assert recheck.main(argv) == code
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("recheck: error: ") and message in err[0], err
