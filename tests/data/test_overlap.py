"""The overlap guard (data/overlap.py): bitext vs evaluation collections, on a synthetic
collection folder and, where ../shared/data exists, AfriQA and FLORES-200."""

import json
import logging
import re
import time

import pytest

from optical_jax.data import corpora, overlap
from optical_jax.data.bitext import BitextPair
from optical_jax.testsets.collection_format import Collection
from optical_jax.testsets.registry import guard_collection

PASSAGE = (
  "Kano is a city in northern Nigeria. It was founded more than a thousand years ago "
  "as a trading town on the edge of the Sahara, and its old walls still stand today."
)


@pytest.fixture
def collection_dir(tmp_path):
  """A collection folder in the layout load_collection reads."""
  root = tmp_path / "coll"
  (root / "queries").mkdir(parents=True)
  (root / "docs.jsonl").write_text(
    json.dumps({"doc_id": "d1", "title": "Kano", "text": PASSAGE})
    + "\n"
    + json.dumps({"doc_id": "d2", "text": "Lagos is the largest city."})
    + "\n",
    encoding="utf-8",
  )
  (root / "queries/hau.tsv").write_text("q1\tIna birnin Kano yake?\n", encoding="utf-8")
  (root / "queries/en.tsv").write_text("q1-en\tWhere is the city of Kano?\n", encoding="utf-8")
  (root / "qrels.txt").write_text("q1 0 d1 1\nq1-en 0 d1 1\n", encoding="utf-8")
  return root


def _pairs():
  return {
    ("mafand:train", "hau"): [
      BitextPair("Good morning.", "Barka da safiya.", "", "train.hau:1"),
      BitextPair("where is the city of  KANO", "Ina Kano?", "", "train.hau:2"),  # query
      BitextPair(
        "It was founded more than a thousand years ago as a trading town.",
        "An kafa ta.",
        "",
        "train.hau:3",
      ),  # 10 words inside d1, mid-passage
      BitextPair("founded more than a thousand years ago", "x", "", "train.hau:4"),  # 7 words
      BitextPair("Thank you.", "Na gode.", "", "train.hau:5"),
    ],
    ("flores200:dev", "hau"): [
      BitextPair("A sentence.", "Ina birnin Kano yake?", "", "hau_Latn.dev:7")
    ],  # hau query
    ("flores200:dev", "yor"): [BitextPair("Clean.", "Mọ́.", "", "yor_Latn.dev:1")],
  }


def test_normalize_and_words():
  assert overlap.normalize("  \ufeffＫａｎｏ\u200b  IS\tHERE\n") == "kano is here"
  assert overlap.words("“Who is Davido?” — he asked!") == ["who", "is", "davido", "he", "asked"]
  assert overlap.words("मराठी भाषा") == ["मराठी", "भाषा"]  # combining marks stay
  assert overlap.words("Ẹ n lẹ́ o 🙂") == ["ẹ", "n", "lẹ́", "o"]


def test_error_mode_names_source_language_collection_and_count(collection_dir):
  with pytest.raises(ValueError) as e:
    overlap.check_overlap(_pairs(), [guard_collection(str(collection_dir), "")])
  message = str(e.value)
  assert "\n" not in message
  assert re.match(
    rf"overlap guard: source mafand:train language hau: 2 of 5 pairs repeat text of "
    rf"collection {re.escape(str(collection_dir))} \(2 pairs; e\.g\. train\.hau:2 English "
    r"'where is the city of  KANO' = .* query en/q1-en\) \(and 1 more sources overlap\); "
    r"set config\.data\.overlap=drop to remove them or config\.data\.overlap=allow to keep "
    r"them$",
    message,
  ), message


def test_drop_mode_removes_exactly_the_overlapping_pairs(collection_dir):
  pairs = _pairs()
  kept, report = overlap.check_overlap(pairs, [guard_collection(collection_dir, "")], mode="drop")
  assert [p.source for p in kept[("mafand:train", "hau")]] == [
    "train.hau:1",
    "train.hau:4",
    "train.hau:5",
  ]
  assert kept[("flores200:dev", "hau")] == []
  assert kept[("flores200:dev", "yor")] == pairs[("flores200:dev", "yor")]
  r = report[("mafand:train", "hau")]
  assert (r["pairs"], r["overlapping"], r["removed"]) == (5, 2, 2)
  assert r["collections"] == {str(collection_dir): 2}
  assert report[("flores200:dev", "hau")]["example"].endswith("query hau/q1")
  assert report[("flores200:dev", "yor")] == {
    "pairs": 1,
    "overlapping": 0,
    "removed": 0,
    "collections": {},
    "example": None,
    "near_duplicates": 0,
    "near_collections": {},
    "near_example": None,
  }


def test_allow_mode_counts_and_keeps(collection_dir, caplog):
  pairs = _pairs()
  with caplog.at_level(logging.WARNING):
    kept, report = overlap.check_overlap(
      pairs, [guard_collection(str(collection_dir), "")], mode="allow"
    )
  assert kept == {k: list(v) for k, v in pairs.items()}
  assert report[("mafand:train", "hau")]["overlapping"] == 2
  assert report[("mafand:train", "hau")]["removed"] == 0
  assert "2 of 5 pairs overlap" in caplog.text
  _, report = overlap.check_overlap(
    {"src": pairs[("mafand:train", "hau")][2:]},
    [guard_collection(collection_dir, "")],
    mode="allow",
  )
  assert report["src"]["example"].endswith(" = " + str(collection_dir) + " inside document d1")


NEAR_QUERY = "Who is the current president of the Federal Republic of Nigeria?"
NEAR_SIDE = "who WAS the current president of the federal republic of Nigeria"  # Jaccard 0.83


def _near_collection():
  queries = {"en": {"q7-en": NEAR_QUERY}, "hau": {"q7": "Wane ne shugaban Najeriya na yanzu?"}}
  return Collection("near", ["d"], {"d": PASSAGE}, queries, {"q7": {"d": 1}})


def test_a_near_duplicate_of_a_query_overlaps_like_an_exact_match(caplog):
  pairs = {
    ("s", "hau"): [
      ("Good morning.", "Barka da safiya."),
      (NEAR_SIDE, "Wane ne shugaban Najeriya?"),  # English side: a query with one word changed
      ("What is the largest city in northern Nigeria?", "Wane birni ne mafi girma?"),
      ("Who leads it now?", "Wane ne shugaban Najeriya na yanzu?"),  # exact: query hau/q7
    ]
  }
  with caplog.at_level(logging.WARNING):
    kept, report = overlap.check_overlap(pairs, [_near_collection()], mode="drop")
  assert kept[("s", "hau")] == [pairs[("s", "hau")][0], pairs[("s", "hau")][2]]
  r = report[("s", "hau")]
  assert (r["overlapping"], r["removed"], r["near_duplicates"]) == (2, 2, 1)
  assert r["collections"] == {"near": 2} and r["near_collections"] == {"near": 1}
  assert r["near_example"] == (
    f"pair #2 English {NEAR_SIDE!r} = near query en/q7-en {NEAR_QUERY!r} "
    "(near duplicate, Jaccard 0.83)"
  )
  assert "2 of 4 pairs overlap {'near': 2} (pair #2 English" in caplog.text
  assert "(1 of them near duplicates of a query, not exact matches); mode drop" in caplog.text
  with pytest.raises(ValueError) as e:
    overlap.check_overlap({("s", "hau"): pairs[("s", "hau")][1:2]}, [_near_collection()])
  assert str(e.value) == (
    f"overlap guard: source s language hau: 1 of 1 pairs repeat text of collection near "
    f"(1 pairs; e.g. pair #1 English {NEAR_SIDE!r} = near query en/q7-en {NEAR_QUERY!r} "
    "(near duplicate, Jaccard 0.83)) (1 of them near duplicates of a query, not exact "
    "matches); set config.data.overlap=drop to remove them or config.data.overlap=allow to "
    "keep them"
  )
  # threshold 0: the exact rules alone; above the pair's similarity: not a near duplicate
  for near in (0.0, 0.9):
    _, report = overlap.check_overlap(pairs, [_near_collection()], mode="allow", near=near)
    assert (report[("s", "hau")]["overlapping"], report[("s", "hau")]["near_duplicates"]) == (1, 0)
  with pytest.raises(ValueError, match=r"^config\.data\.overlap_near=1\.5; expected"):
    overlap.check_overlap(pairs, [_near_collection()], near=1.5)


def test_threshold_zero_gives_the_exact_rules_counts(collection_dir):
  coll = [guard_collection(collection_dir, "")]
  _, off = overlap.check_overlap(_pairs(), coll, mode="allow", near=0.0)
  _, on = overlap.check_overlap(_pairs(), coll, mode="allow")
  assert {k: r["overlapping"] for k, r in off.items()} == {
    ("mafand:train", "hau"): 2,
    ("flores200:dev", "hau"): 1,
    ("flores200:dev", "yor"): 0,
  }
  assert on == off  # nothing in _pairs() is a near duplicate


def test_substring_needs_eight_words_and_tuples_work():
  coll = Collection("c", ["d"], {"d": PASSAGE}, {}, {})
  eight = "more than a thousand years ago as a"
  seven = "more than a thousand years ago as"
  _, report = overlap.check_overlap(
    {("s", "hau"): [(eight, "x"), (seven, "y"), ("x", eight)]}, [coll], mode="allow"
  )
  assert report[("s", "hau")]["overlapping"] == 2
  assert report[("s", "hau")]["collections"] == {"c": 2}


def test_names_are_resolved_by_the_registry_first(collection_dir):
  with pytest.raises(TypeError, match=r"resolve them with optical_jax\.testsets\.registry"):
    overlap.check_overlap(_pairs(), [str(collection_dir)])


def test_bad_mode():
  with pytest.raises(
    ValueError,
    match=r"^config\.data\.overlap='warn'; expected one of "
    r"\('error', 'drop', 'allow'\)$",
  ):
    overlap.check_overlap({}, [], mode="warn")


def test_fast_on_many_pairs_and_documents():
  """20k pairs (two sides each) against 2k passages of 100 words: well under a few seconds."""
  vocab = [f"w{i}" for i in range(5000)]
  docs = {
    f"d{j}": " ".join(vocab[(j * 7 + k * 13) % 5000] for k in range(100)) + "." for j in range(2000)
  }
  coll = Collection("big", list(docs), docs, {"en": {"q": "w1 w2"}}, {"q": {"d0": 1}})
  pairs = [
    (
      " ".join(vocab[(i * 3 + k) % 5000] for k in range(12)),
      " ".join(vocab[(i * 11 + k) % 5000] for k in range(9)),
    )
    for i in range(20000)
  ]
  inside = " ".join(docs["d5"].split()[20:30])
  pairs[123] = (inside, pairs[123][1])
  start = time.time()
  _, report = overlap.check_overlap({("s", "x"): pairs}, [coll], mode="allow")
  assert time.time() - start < 10
  assert report[("s", "x")]["overlapping"] >= 1
  assert (
    "inside document d5" in report[("s", "x")]["example"] or report[("s", "x")]["overlapping"] > 1
  )


# ---------------------------------------------------------------- real data (../shared/data)


def _brute_force(pairs, collection):
  """Independent check: normalised whole-text equality, or >= 8 words inside a document."""
  texts = {overlap.normalize(t) for q in collection.queries.values() for t in q.values()}
  texts |= {overlap.normalize(t) for t in collection.docs.values()}
  words = {" ".join(overlap.words(t)) for q in collection.queries.values() for t in q.values()}
  docs = [" " + " ".join(overlap.words(t)) + " " for t in collection.docs.values()]
  words |= {d.strip() for d in docs}
  docs = "\n".join(docs)  # a run of words cannot span the newline between two documents
  hits = 0
  for p in pairs:
    for side in (p.english, p.foreign):
      w = " ".join(overlap.words(side))
      if w and (
        overlap.normalize(side) in texts or w in words or (len(w.split()) >= 8 and f" {w} " in docs)
      ):
        hits += 1
        break
  return hits


def test_real_afriqa_train_questions_vs_afriqa_dev_collection(shared_data):
  """AfriQA train questions repeat dev queries (same or other language's English reference)
  or sit inside a passage: 26 of 1,608 pairs by the exact rules (bem 1, hau 2, ibo 3, kin 3,
  twi 17, zul 0); the near rule at 0.8 adds 13 (bem 5, ibo 4, kin 3, twi 1; docs/RELIABILITY.md)."""
  from optical_jax.testsets.afriqa_passages import afriqa_collection  # pylint: disable=import-outside-toplevel

  langs = ("bem", "hau", "ibo", "kin", "twi", "zul")
  pairs = {
    ("afriqa:train", l): corpora.read_corpus(
      "afriqa", None, l, "train", shared_root=shared_data
    ).pairs
    for l in langs
  }
  kept, report = overlap.check_overlap(
    pairs, [guard_collection("afriqa", shared_data)], mode="drop", near=0.0
  )
  counts = {k[1]: r["overlapping"] for k, r in report.items()}
  coll = afriqa_collection(shared_data / "afriqa_dev")
  assert counts == {k[1]: _brute_force(v, coll) for k, v in pairs.items()}
  assert sum(counts.values()) == 26, counts
  assert all(len(kept[k]) == len(pairs[k]) - counts[k[1]] for k in pairs)
  if any(counts.values()):
    with pytest.raises(
      ValueError,
      match=r"^overlap guard: source afriqa:train language \w+: "
      r"\d+ of \d+ pairs repeat text of collection afriqa ",
    ):
      overlap.check_overlap(pairs, [guard_collection("afriqa", shared_data)])
  _, near = overlap.check_overlap(pairs, [guard_collection("afriqa", shared_data)], mode="allow")
  assert {k[1]: (r["overlapping"], r["near_duplicates"]) for k, r in near.items()} == {
    "bem": (6, 5),
    "hau": (2, 0),
    "ibo": (7, 4),
    "kin": (6, 3),
    "twi": (18, 1),
    "zul": (0, 0),
  }


def test_real_flores_dev_vs_devtest(shared_data):
  """FLORES-200 dev against devtest (all 20 languages and English): one Spanish dev line
  (spa_Latn.dev:833) equals a devtest line; nothing else repeats."""
  docs, langs = {}, list(corpora.FLORES_CODES)
  for lang in langs:
    for i, p in enumerate(
      corpora.read_corpus("flores200", None, lang, "devtest", shared_root=shared_data)
    ):
      docs[f"{lang}-{i}"] = p.foreign
      docs[f"eng-{i}"] = p.english
  coll = Collection("flores_devtest", list(docs), docs, {}, {})
  dev = {
    ("flores200:dev", l): corpora.read_corpus(
      "flores200", None, l, "dev", shared_root=shared_data
    ).pairs
    for l in langs
  }
  _, report = overlap.check_overlap(dev, [coll], mode="allow")
  counts = {k[1]: r["overlapping"] for k, r in report.items() if r["overlapping"]}
  assert counts == {"spa": 1}, counts
  assert report[("flores200:dev", "spa")]["example"].startswith("spa_Latn.dev:833 foreign")
