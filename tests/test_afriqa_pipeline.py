"""AfriQA as a collection (data/afriqa.py), FLORES devtest as a collection, and the retrieval
checks a training run ends with (dev_eval.py) through configs/tiny.py:afriqa, on synthetic data in
the real layouts; the real files' counts where ../shared/data exists. The AfriQA study
(studies/afriqa_grid.py) end to end on the same tiny runs."""

import json

import ml_collections
import numpy as np
import pytest

from configs import tiny
from optical_jax import experiment
from optical_jax.data.sources import load_splits_with_manifest
from optical_jax.data import afriqa
from optical_jax.testsets import afriqa_passages, registry
from optical_jax.commands.build_collection import main as collections_main
from optical_jax.testsets.builders import flores_collection
from optical_jax.testsets.registry import guard_collection, load_collection
from hf_fixtures import make_checkpoint

WORDS = "aa bb cc dd ee ff gg hh ii jj kk ll mm nn oo pp".split()


def _text(i, n=6, shift=0):
  return " ".join(WORDS[(i * 3 + k + shift) % len(WORDS)] for k in range(n))


def _afriqa_rows(lang, split, n, start=0):
  rows = []
  for i in range(start, start + n):
    rows.append(
      {
        "id": str(i - start),
        "question_lang": f"{lang} {i} {_text(i, 4, 1)}",
        "question_translated": f"en {i} {_text(i, 4, 2)}",
        "title": f"T{i}",
        "context": f"passage {i} {_text(i, 12)}",
        "answer_pivot": {},
      }
    )
  return rows


def _write_jsonl(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def shared(tmp_path):
  return make_shared(tmp_path / "data")


def make_shared(root):
  """A synthetic ../shared/data: AfriQA hau (train, dev) and yor (train only), FLORES dev and
  devtest (eng hau yor deu), Tatoeba swh."""
  hau_dev = _afriqa_rows("hau", "dev", 12)
  hau_dev[3]["question_lang"] = float("nan")  # like the one Twi row upstream
  hau_dev[5]["context"] = None  # a question without a passage
  hau_dev[5]["title"] = None
  _write_jsonl(afriqa.afriqa_file(root / "afriqa_dev", "hau", "dev"), hau_dev)
  _write_jsonl(
    afriqa.afriqa_file(root / "afriqa_dev", "hau", "train"),
    _afriqa_rows("hau", "train", 40, start=100),
  )
  _write_jsonl(
    afriqa.afriqa_file(root / "afriqa_dev", "yor", "train"),
    _afriqa_rows("yor", "train", 10, start=200),
  )
  for split, n in (("dev", 40), ("devtest", 16)):
    for stem, shift in (("eng_Latn", 0), ("hau_Latn", 1), ("yor_Latn", 2), ("deu_Latn", 3)):
      path = root / "flores200" / split / f"{stem}.{split}"
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(
        "".join(
          f"{split} {stem[:3]} {_text(i + 50 * (split == 'dev'), 7, shift)}\n" for i in range(n)
        ),
        encoding="utf-8",
      )
  tat = root / "tatoeba" / "v1"
  tat.mkdir(parents=True)
  (tat / "tatoeba.swh-eng.swh").write_text("".join(f"swh {_text(i, 5, 4)}\n" for i in range(10)))
  (tat / "tatoeba.swh-eng.eng").write_text("".join(f"eng {_text(i, 5, 5)}\n" for i in range(10)))
  return root


def test_afriqa_collection_queries_pool_and_skips(shared):
  coll = afriqa_passages.afriqa_collection(shared / "afriqa_dev", ["hau", "yor"])
  # hau dev: 12 rows, one question NaN (skipped), one without a passage (not a query)
  assert len(coll.queries["hau"]) == 10
  assert len(coll.queries["yor"]) == 10  # Yoruba's test split is its train split
  assert all(q.startswith("yor-train-") for q in coll.queries["yor"])
  assert len(coll.queries["en"]) == 20
  for qid, text in coll.queries["hau"].items():
    assert coll.queries["en"][afriqa_passages.english_of(qid)].startswith("en ")
    assert coll.qrels[qid] == coll.qrels[afriqa_passages.english_of(qid)]
  # the pool holds the train passages too: 10 hau dev + 40 hau train + 10 yor train
  assert len(coll.doc_ids) == 60
  counts = coll.meta["counts"]
  assert counts["hau.dev"] == {
    "rows": 12,
    "question_not_a_string": 1,
    "no_passage": 1,
    "queries": 10,
  }
  assert counts["hau.train"]["queries"] == 0


def test_afriqa_question_pairs_refuse_the_test_split(shared):
  pairs = afriqa.question_pairs(shared / "afriqa_dev", ["hau"])
  assert len(pairs["hau"]) == 40 and pairs["hau"][0][0].startswith("en ")
  with pytest.raises(ValueError, match="yor train is the test split"):
    afriqa.question_pairs(shared / "afriqa_dev", ["yor"])
  with pytest.raises(FileNotFoundError, match="no AfriQA dev file for 'yor'"):
    afriqa.read_afriqa(shared / "afriqa_dev", "yor", "dev")


def test_collection_builders_on_the_command_line(shared, tmp_path):
  assert (
    collections_main(
      ["afriqa", "--source", str(shared / "afriqa_dev"), "--out", str(tmp_path / "aq")]
    )
    == 0
  )
  coll = load_collection(tmp_path / "aq")
  assert sorted(coll.queries) == ["en", "hau", "yor"]
  assert coll.meta["english_reference"] == {"lang": "en", "qid_suffix": "-en"}
  assert (
    collections_main(
      [
        "flores",
        "--source",
        str(shared / "flores200"),
        "--out",
        str(tmp_path / "fl"),
        "--langs",
        "hau,deu",
      ]
    )
    == 0
  )
  fl = load_collection(tmp_path / "fl")
  assert len(fl.doc_ids) == 16 and sorted(fl.queries) == ["deu", "hau"]
  assert fl.qrels["hau-7"] == {"flores-devtest-7": 1}
  assert "Known-item" in fl.meta["description"]


def test_flores_collection_errors(shared):
  with pytest.raises(ValueError, match="no language"):
    flores_collection(shared / "flores200", ["xyz"])
  with pytest.raises(ValueError, match="expected 'dev' or 'devtest'"):
    flores_collection(shared / "flores200", ["hau"], "test")


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert")
  make_checkpoint(d, "bert")
  return d


def _tiny(shared, small_bert, **over):
  config = tiny.get_config("afriqa")
  config.model = str(small_bert)
  config.data.shared_root = str(shared)
  config.retrieval.cache_dir = str(shared.parent / "cache")
  for k, v in over.items():
    section, field = k.split(".")
    config[section][field] = v
  return config


@pytest.mark.slow
def test_train_ends_with_retrieval_checks(shared, small_bert, tmp_path):
  """configs/tiny.py:afriqa: mixture -> manifest -> a few steps -> AfriQA / FLORES / Tatoeba."""
  work = tmp_path / "run"
  res = experiment.train_and_evaluate(_tiny(shared, small_bert), str(work))
  manifest = json.loads((work / "bitext_manifest.json").read_text())
  assert {r["corpus"] for r in manifest["sources"]} == {"afriqa", "flores200"}
  assert manifest["overlap"]["collections"] == ["afriqa_dev", "flores200_devtest", "tatoeba"]
  aq = res["retrieval"]["afriqa.dense"]
  assert set(aq["closed"]["langs"]) == {"hau", "yor"}
  for l, r in aq["closed"]["langs"].items():
    assert r["gap"] == pytest.approx(r["english_zero_shot"] - r["native_zero_shot"])
    assert r["gain"] == pytest.approx(r["native_method"] - r["native_zero_shot"])
  fl = res["retrieval"]["flores_devtest.dense"]
  assert fl["langs"]["deu"]["resource"] == "high" and fl["langs"]["hau"]["resource"] == "low"
  assert set(res["retrieval"]["tatoeba"]["langs"]) == {"swh"}
  stored = json.loads((work / "retrieval" / "afriqa.dense.json").read_text())
  assert set(stored["per_query"]["student"]) == {"hau", "yor", "en"}
  config = _tiny(shared, small_bert)
  assert stored["settings"] == {
    "k": config.retrieval.k,
    "doc_max_length": config.retrieval.doc_max_length,
    "query_model": stored["settings"]["query_model"],
    "doc_model": str(small_bert),
    "interpolation": config.train.interpolation,
  }
  assert res["retrieval"]["tatoeba"]["settings"] == stored["settings"]
  assert "afriqa.dense" in (work / "results.md").read_text()
  # zero-shot is cached: a zero-shot run reads it and closes nothing
  zs = experiment.train_and_evaluate(_zero(shared, small_bert), str(tmp_path / "zs"))
  z = zs["retrieval"]["afriqa.dense"]["closed"]
  assert z["closed_pooled"] == 0.0 and all(r["gain"] == 0.0 for r in z["langs"].values())


def _zero(shared, small_bert):
  config = _tiny(shared, small_bert)
  config.method = "zero_shot"
  return config


def _bitext_repeating_two_dev_questions(shared, small_bert):
  """configs/tiny.py:afriqa on ``shared`` whose AfriQA hau train file repeats two dev
  questions (42 pairs in all, uncapped), overlap 'error'."""
  dev = afriqa.afriqa_file(shared / "afriqa_dev", "hau", "dev")
  train = afriqa.afriqa_file(shared / "afriqa_dev", "hau", "train")
  repeats = [
    dict(json.loads(line), id=f"r{i}") for i, line in enumerate(dev.read_text().splitlines()[:2])
  ]
  train.write_text(train.read_text() + "".join(json.dumps(r) + "\n" for r in repeats))
  config = _tiny(shared, small_bert)
  config.data.cap = 0  # all 42 pairs (the cap would draw a subset before the guard)
  config.data.overlap = "error"  # configs/afriqa.py drops and counts them
  return config


def test_overlap_guard_stops_before_any_model_is_loaded(shared, small_bert, tmp_path):
  """A bitext source that repeats AfriQA dev questions: one-line error naming source and count;
  with overlap 'drop', the manifest counts the pairs dropped."""
  config = _bitext_repeating_two_dev_questions(shared, small_bert)
  config.model = str(tmp_path / "no_such_model")  # never reached
  with pytest.raises(ValueError, match=r"afriqa:train language hau: 2 of 42 pairs"):
    experiment.train_and_evaluate(config, str(tmp_path / "run"))
  config.data.overlap = "drop"
  config.evals = (
    ml_collections.ConfigDict()
  )  # no checks: the guard then reads data.overlap_collections
  config.data.overlap_collections = "afriqa"
  # What train_and_evaluate writes as bitext_manifest.json (test_overlap_dropped_in_a_run; with
  # no retrieval checks, the guard has no collections of its own to add).
  _, manifest = load_splits_with_manifest(config, [], guard_collection)
  row = next(r for r in manifest["sources"] if r["corpus"] == "afriqa")
  assert row["overlap_removed"] == 2


@pytest.mark.slow
def test_overlap_dropped_in_a_run(shared, small_bert, tmp_path):
  """overlap 'drop' with the guard reading data.overlap_collections: a run trains and its
  bitext_manifest.json counts the 2 pairs dropped."""
  config = _bitext_repeating_two_dev_questions(shared, small_bert)
  config.data.overlap = "drop"
  config.evals = (
    ml_collections.ConfigDict()
  )  # no checks: the guard then reads data.overlap_collections
  config.data.overlap_collections = "afriqa"
  config.train.num_steps = 1
  experiment.train_and_evaluate(config, str(tmp_path / "run2"))
  manifest = json.loads((tmp_path / "run2" / "bitext_manifest.json").read_text())
  row = next(r for r in manifest["sources"] if r["corpus"] == "afriqa")
  assert row["overlap_removed"] == 2


def test_real_afriqa_collection(shared_data):
  coll = afriqa_passages.afriqa_collection(shared_data / "afriqa_dev")
  counts = coll.meta["counts"]
  assert counts["twi.dev"]["question_not_a_string"] == 1  # the NaN row
  assert sum(c["question_not_a_string"] for c in counts.values()) == 1
  assert {l: len(q) for l, q in coll.queries.items() if l != "en"} == {
    "bem": 235,
    "hau": 222,
    "ibo": 307,
    "kin": 229,
    "twi": 328,
    "yor": 247,
    "zul": 242,
  }
  assert len(coll.queries["en"]) == 1810
  assert counts["kin.dev"]["no_passage"] == 30  # questions without a gold passage: not queries
  assert len(coll.doc_ids) == 3071


@pytest.mark.slow
def test_afriqa_study_tiny(shared, small_bert, tmp_path):
  """study.py's AfriQA kind: zero-shot, a KD baseline with two seeds and OPTICAL with one, each a
  tiny train.py run, then one report with the fraction of the gap closed and paired tests."""
  from optical_jax.studies import afriqa_grid, runner

  config = tiny.get_config("afriqa_study")  # focus languages hau, yor; 50 bootstrap samples
  config.methods = "zero_shot,kd_sentence:0+1,optical:0"
  config.distill = _tiny(shared, small_bert)
  config.distill = registry.select(config.distill, ("afriqa", "flores_devtest"))
  a = runner.run(afriqa_grid.STUDY, config, str(tmp_path / "study"))
  assert {m: r["seeds"] for m, r in a["methods"].items()} == {
    "zero_shot": 1,
    "kd_sentence": 2,
    "optical": 1,
    "kd_sentence@0.5": 2,
    "optical@0.5": 1,
  }
  assert a["best_kd"] == "kd_sentence"
  assert "vs_best_kd" in a["methods"]["optical"] and "vs_zero_shot" in a["methods"]["optical"]
  # interpolated rows are tested against the KD baseline interpolated by the same weight
  assert a["methods"]["optical@0.5"]["best_kd"] == "kd_sentence@0.5"
  inter = json.loads(
    (
      tmp_path / "study/runs/optical/seed0/interpolation_0.5/retrieval/afriqa.dense.json"
    ).read_text()
  )
  exported = json.loads((tmp_path / "study/runs/optical/seed0/config.json").read_text())
  assert inter["settings"]["interpolation"] == 0.5 * exported["train"]["interpolation"]
  assert a["methods"]["zero_shot"]["closed"]["closed_pooled"] == 0.0
  report = (tmp_path / "study" / "report.md").read_text()
  assert "| kd_sentence | 2 |" in report and "FLORES-200 devtest" in report
  assert (tmp_path / "study" / "gap.png").stat().st_size > 0
  for figure in ("dumbbell.png", "forest.png"):  # evaluation/figures.py
    assert (tmp_path / "study" / figure).read_bytes()[:4] == b"\x89PNG"
  rows = (tmp_path / "study" / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + 5 * 2  # header + methods (2 of them interpolated) x languages
  # rerunning trains nothing and reports the same
  again = runner.run(afriqa_grid.STUDY, config, str(tmp_path / "study"))
  assert again["methods"]["optical"]["closed"]["closed_pooled"] == pytest.approx(
    a["methods"]["optical"]["closed"]["closed_pooled"]
  )
  # the MaxSim report of the same runs: checked again, not trained again, beside the dense one
  mtime = (tmp_path / "study/runs/optical/seed0/student/config.json").stat().st_mtime
  assert config.rankers == "dense"  # configs/tiny.py: the dense report only
  config.rankers = "maxsim"
  m = runner.run(afriqa_grid.STUDY, config, str(tmp_path / "study"))
  assert m["ranker"] == "maxsim" and set(m["methods"]) == set(a["methods"])
  assert (tmp_path / "study/runs/optical/seed0/student/config.json").stat().st_mtime == mtime
  for run in ("zero_shot/seed0", "optical/seed0", "optical/seed0/interpolation_0.5"):
    assert (tmp_path / "study/runs" / run / "retrieval/afriqa.maxsim.json").is_file()
  assert "(maxsim ranker)" in (tmp_path / "study" / "report.maxsim.md").read_text()
  assert "(dense ranker)" in report
  assert (tmp_path / "study" / "report.md").read_text() == report  # the dense one stays


@pytest.mark.slow
def test_afriqa_study_teacher_axis(shared, small_bert, tmp_path):
  """config.teachers: the student's own model and an MPNet teacher of another width and
  tokenizer, each with zero-shot, a KD baseline and OPTICAL; each teacher's own report, and
  teachers.md side by side. The interpolated rows of the cross-model teacher start from the
  student's own weights and its fitted projection."""
  from optical_jax.studies import afriqa_grid, runner

  mpnet = tmp_path / "mpnet"
  make_checkpoint(mpnet, "mpnet", seed=5, hidden_size=48, relative_attention_num_buckets=8)
  config = tiny.get_config("afriqa_study")
  config.methods = "zero_shot,kd_sentence:0,optical:0"
  config.teachers = f"self,{mpnet}"
  config.distill = _tiny(shared, small_bert)
  config.distill = registry.select(config.distill, ("afriqa",))
  out = runner.run(afriqa_grid.STUDY, config, str(tmp_path / "study"))
  assert set(out["teachers"]) == {"", str(mpnet)}
  for a in out["teachers"].values():
    assert set(a["methods"]) == {
      "zero_shot",
      "kd_sentence",
      "optical",
      "kd_sentence@0.5",
      "optical@0.5",
    }
  cross = tmp_path / "study" / afriqa_grid.teachers(config)[str(mpnet)]
  assert (cross / "report.md").is_file() and (tmp_path / "study" / "report.md").is_file()
  run = cross / "runs" / "optical" / "seed0"
  assert json.loads((run / "config.json").read_text())["teacher"]["model"] == str(mpnet)
  assert np.load(run / "projection_start.npy").shape == (32, 48)
  results = json.loads((run / "results.json").read_text())
  assert -1.0 < results["training"]["projection_fit"]["r2"] <= 1.0
  assert {"zero_shot", "student_zero_shot", "optical"} <= set(results["results"])
  # the exported student carries the projection 32 -> 48 and the student's own tokenizer
  from optical_jax.encode import encode_texts
  from optical_jax.loading import load_encoder

  student, base = load_encoder(str(run)), load_encoder(str(small_bert))
  assert student.config.output_dim == 48 and student.meta["teacher"] == str(mpnet)
  assert student.tokenizer.backend.to_str() == base.tokenizer.backend.to_str()
  assert encode_texts(student, ["aa bb", "cc"], progress=False).shape == (2, 48)
  table = (tmp_path / "study" / "teachers.md").read_text()
  assert f"| {mpnet} |" in table and "| self (" in table


@pytest.mark.slow
def test_question_like_selection_in_a_run(shared, small_bert, tmp_path):
  """data.select 'question_like': the run loads the teacher first, keeps the FLORES pairs whose
  English sides its embeddings put nearest the AfriQA questions, and the manifest says so."""
  from optical_jax.data import mixture, question_like  # pylint: disable=import-outside-toplevel
  from optical_jax.encode import encode_texts  # pylint: disable=import-outside-toplevel
  from optical_jax.loading import load_encoder  # pylint: disable=import-outside-toplevel
  from optical_jax.training.student import text_prefix  # pylint: disable=import-outside-toplevel

  config = _tiny(shared, small_bert)
  config.data.mixture = "afriqa:train:hau, flores200:dev:hau"
  config.data.select, config.data.cap, config.data.test_fraction = "question_like", 10, 0.1
  config.evals = ml_collections.ConfigDict()
  config.train.num_steps = 1
  experiment.train_and_evaluate(config, str(tmp_path / "run"))
  manifest = json.loads((tmp_path / "run" / "bitext_manifest.json").read_text())
  rows = {r["corpus"]: r for r in manifest["sources"]}
  assert manifest["select"] == "question_like"
  # FLORES dev hau: 16 distinct pairs of its 40 lines (the rest duplicates), 10 kept
  assert (rows["afriqa"]["selected_out"], rows["flores200"]["selected_out"]) == (0, 6)
  assert rows["flores200"]["used"] == 10
  # the same ten, recomputed with the teacher outside the run
  teacher = load_encoder(str(small_bert))
  embed = lambda texts: encode_texts(
    teacher,
    texts,
    prefix=text_prefix(teacher, config),
    normalize=True,
    progress=False,
    pooling=config.eval.pooling or None,
    batch_size=config.eval.batch_size,
  )
  questions = [f"en {i} {_text(i, 4, 2)}" for i in range(100, 140)]
  english = [f"dev eng {_text(i + 50, 7, 0)}" for i in range(16)]
  score = question_like.question_likeness(english, questions, embed)
  want = sorted(np.argsort(-score, kind="stable")[:10])
  kept = mixture.manifest_sha((english[i], f"dev hau {_text(i + 50, 7, 1)}") for i in want)
  assert rows["flores200"]["sha256"] == kept
