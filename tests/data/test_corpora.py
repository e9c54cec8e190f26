"""Shared-corpus readers (data/corpora.py): synthetic files in each corpus's real layout, and the
real files in ../shared/data where they exist (counts from each folder's PROVENANCE.md)."""

import json
import re

import pytest

from optical_jax.data import corpora
from optical_jax.data.bitext import BitextPair


def _write(path, lines, final_newline=True):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")


def _afriqa_row(i, native, english, context="A passage."):
  return json.dumps(
    {
      "id": str(i),
      "question_lang": native,
      "question_translated": english,
      "title": "T",
      "context": context,
      "answer_pivot": "x",
    }
  )


@pytest.fixture
def shared(tmp_path):
  """A miniature ../shared/data with every corpus in its real layout."""
  root = tmp_path / "data"
  for split, n in (("dev", 3), ("devtest", 2)):
    for code, word in (("eng_Latn", "English"), ("swh_Latn", "Swahili")):
      _write(root / f"flores200/{split}/{code}.{split}", [f"{word} {split} {i}." for i in range(n)])
  for split in ("train", "dev", "test"):
    _write(root / f"mafand_mt/en-hau/{split}.en", [f"en {split} 1", f"en {split} 2"])
    _write(root / f"mafand_mt/en-hau/{split}.hau", [f"ha {split} 1", f"ha {split} 2"])
  for split in ("dev", "test"):
    _write(root / f"mafand_mt/en-kin/{split}.en", ["en kin"])
    _write(root / f"mafand_mt/en-kin/{split}.kin", ["rw kin"])
  _write(
    root / "menyo20k/train.tsv",
    [
      "English\tYoruba",
      "Hello.\t\ufeffẸ n lẹ.",
      '"He said ""go"" now."\t"Ó ní ""lọ"" báyìí."',
      '"a\tb"\tc d',
    ],
  )
  _write(root / "hornmt/eng.txt", ["One.", "Two.", "Three."])
  _write(root / "hornmt/som.txt", ["Hal.", "Laba.", "Saddex."])
  _write(
    root / "hornmt/metadata.tsv",
    [
      "Scope\tCategory\tSource\tDomain\tDate",
      "G\tA\thttp://a\ta\t2010",
      "G\tA\thttp://a\ta\t2010",
      "G\tB\thttp://b\tb\t2010",
    ],
  )
  for code, word in (("sw_KE", "Kenya"), ("sw_TZ", "Tanzania")):
    _write(
      root / f"wmt24pp/en-{code}.jsonl",
      [
        json.dumps(
          {
            "lp": f"en-{code}",
            "document_id": "canary",
            "is_bad_source": True,
            "source": "CANARY",
            "target": "CANARY",
          }
        ),
        json.dumps(
          {
            "lp": f"en-{code}",
            "document_id": "doc1",
            "is_bad_source": False,
            "source": "A segment.",
            "target": f"{word} sehemu.",
          }
        ),
      ],
    )
  _write(
    root / "ciral_queries/ha/test-a.eng.tsv",
    ["3\tWhere is Kano?", '8\t"The ""big"" city?"', "9\tOnly English"],
  )
  _write(
    root / "ciral_queries/ha/test-a.ha.tsv",
    ["8\tBabban birni?", "3\tIna Kano?", "3\tA repeat of qid 3", "10\tOnly Hausa"],
    final_newline=False,
  )
  afriqa = root / "afriqa_dev"
  _write(
    afriqa / "hau/gold_span_passages.afriqa.hau.en.train.json",
    [
      _afriqa_row(0, "Ina Kano?", "Where is Kano?"),
      "",
      json.dumps({"id": "1", "question_lang": float("nan"), "question_translated": "x"}),
      _afriqa_row(2, "Menene?", "What?"),
    ],
  )
  _write(afriqa / "hau/gold_span_passages.afriqa.hau.en.dev.json", [_afriqa_row(0, "Dev?", "Dev?")])
  _write(
    afriqa / "yor/gold_span_passages.afriqa.yor.en.train.json", [_afriqa_row(0, "Níbo?", "Where?")]
  )
  return root


def _raises(exc, message):
  return pytest.raises(exc, match="^" + re.escape(message) + "$")


def test_registry_licenses_and_splits():
  assert corpora.CORPORA["mafand"].license.startswith("CC BY-NC 4.0")
  assert corpora.CORPORA["menyo20k"].license.startswith("CC BY-NC 4.0")
  assert corpora.CORPORA["flores200"].license.startswith("CC BY-SA 4.0")
  assert corpora.CORPORA["hornmt"].license.startswith("CC BY 4.0")
  assert corpora.CORPORA["wmt24pp"].license.startswith("Apache-2.0")
  assert corpora.CORPORA["ciral"].license.startswith("Apache-2.0")
  assert corpora.CORPORA["afriqa"].license.startswith("CC BY 4.0")
  assert corpora.CORPORA["mafand"].splits_of("kin") == ["dev", "test"]
  assert corpora.CORPORA["flores200"].trainable_splits("swa") == ["dev"]
  assert corpora.CORPORA["afriqa"].splits_of("yor") == []
  assert len(corpora.FLORES_CODES) == 20
  assert str(corpora.default_root("mafand")) == "../shared/data/mafand_mt"


def test_flores200_maps_iso_codes(shared):
  data = corpora.read_corpus("flores200", None, "swa", "devtest", shared_root=shared)
  assert data.pairs == [
    BitextPair("English devtest 0.", "Swahili devtest 0.", "", "swh_Latn.devtest:1"),
    BitextPair("English devtest 1.", "Swahili devtest 1.", "", "swh_Latn.devtest:2"),
  ]
  assert len(corpora.read_corpus("flores200", None, "swa", shared_root=shared)) == 3  # dev
  with _raises(
    ValueError,
    f"flores200 has no language 'sw'; available (ISO 639-3): {sorted(corpora.FLORES_CODES)}",
  ):
    corpora.read_corpus("flores200", None, "sw", "dev", shared_root=shared)
  with _raises(ValueError, "flores200 swa has no split 'test'; available: ['dev', 'devtest']"):
    corpora.read_corpus("flores200", None, "swa", "test", shared_root=shared)


def test_flores200_missing_language_file(shared):
  with pytest.raises(
    FileNotFoundError, match=r"hau_Latn\.dev: no such file \(FLORES-200 hau dev\)"
  ):
    corpora.read_corpus("flores200", None, "hau", "dev", shared_root=shared)


def test_mafand_splits_and_kin_without_train(shared):
  data = corpora.read_corpus("mafand", shared / "mafand_mt", "hau", "dev")
  assert [(p.english, p.foreign, p.source) for p in data] == [
    ("en dev 1", "ha dev 1", "dev.hau:1"),
    ("en dev 2", "ha dev 2", "dev.hau:2"),
  ]
  assert len(corpora.read_corpus("mafand", None, "kin", "test", shared_root=shared)) == 1
  with _raises(ValueError, "mafand kin has no split 'train'; available: ['dev', 'test']"):
    corpora.read_corpus("mafand", None, "kin", "train", shared_root=shared)
  with _raises(
    ValueError,
    "mafand has no language 'som'; available (ISO 639-3): "
    "['hau', 'ibo', 'kin', 'swa', 'yor', 'zul']",
  ):
    corpora.read_corpus("mafand", None, "som", "train", shared_root=shared)


def test_mafand_unequal_line_counts_name_the_file(shared):
  _write(shared / "mafand_mt/en-hau/train.hau", ["ha 1"])
  with pytest.raises(ValueError, match=r"train\.en:2: line 2 has no counterpart"):
    corpora.read_corpus("mafand", None, "hau", "train", shared_root=shared)


def test_menyo20k_header_csv_quoting_and_bom(shared):
  data = corpora.read_corpus("menyo20k", None, "yor", "train", shared_root=shared)
  assert [(p.english, p.foreign, p.source) for p in data] == [
    ("Hello.", "Ẹ n lẹ.", "train.tsv:2"),
    ('He said "go" now.', 'Ó ní "lọ" báyìí.', "train.tsv:3"),
    ("a b", "c d", "train.tsv:4"),
  ]
  _write(shared / "menyo20k/dev.tsv", ["Hello.\tẸ n lẹ."])
  with _raises(
    ValueError,
    f"{shared / 'menyo20k/dev.tsv'}:1: expected the header row "
    "'English<TAB>Yoruba', got 'Hello.\\tẸ n lẹ.'",
  ):
    corpora.read_corpus("menyo20k", None, "yor", "dev", shared_root=shared)
  _write(shared / "menyo20k/test.tsv", ["English\tYoruba", "a\tb\tc"])
  with _raises(
    ValueError, f"{shared / 'menyo20k/test.tsv'}:2: expected 2 tab-separated fields, got 3"
  ):
    corpora.read_corpus("menyo20k", None, "yor", "test", shared_root=shared)


def test_hornmt_doc_ids_from_metadata(shared):
  data = corpora.read_corpus("hornmt", None, "som", shared_root=shared)
  assert [(p.english, p.foreign, p.doc_id, p.source) for p in data] == [
    ("One.", "Hal.", "http://a", "som.txt:1"),
    ("Two.", "Laba.", "http://a", "som.txt:2"),
    ("Three.", "Saddex.", "http://b", "som.txt:3"),
  ]


def test_wmt24pp_reads_both_swahili_files_and_skips_bad_sources(shared):
  data = corpora.read_corpus("wmt24pp", None, "swa", shared_root=shared)
  assert data.skipped == 2
  assert data.pairs == [
    BitextPair("A segment.", "Kenya sehemu.", "doc1", "en-sw_KE.jsonl:2"),
    BitextPair("A segment.", "Tanzania sehemu.", "doc1", "en-sw_TZ.jsonl:2"),
  ]
  with _raises(
    ValueError, "wmt24pp has no language 'hau'; available (ISO 639-3): ['mar', 'swa', 'tgl', 'zul']"
  ):
    corpora.read_corpus("wmt24pp", None, "hau", shared_root=shared)


def test_ciral_joins_on_qid(shared, caplog):
  data = corpora.read_corpus("ciral", None, "hau", "test-a", shared_root=shared)
  # native file order; qid 3 repeated (later one skipped), 9 and 10 unmatched: 3 skipped
  assert data.pairs == [
    BitextPair('The "big" city?', "Babban birni?", "", "test-a.ha.tsv:1"),
    BitextPair("Where is Kano?", "Ina Kano?", "", "test-a.ha.tsv:2"),
  ]
  assert data.skipped == 3
  assert "qid 3 repeated (first on line 2); skipped" in caplog.text
  with _raises(ValueError, "ciral hau has no split 'dev'; available: ['test-a', 'test-b']"):
    corpora.read_corpus("ciral", None, "hau", "dev", shared_root=shared)


def test_afriqa_question_pairs_and_refusals(shared):
  data = corpora.read_corpus("afriqa", None, "hau", shared_root=shared)
  name = "gold_span_passages.afriqa.hau.en.train.json"
  assert data.pairs == [
    BitextPair("Where is Kano?", "Ina Kano?", "", f"{name}:1"),
    BitextPair("What?", "Menene?", "", f"{name}:4"),
  ]
  assert data.skipped == 1  # the NaN question
  with pytest.raises(ValueError, match="AfriQA yor train is the test split"):
    corpora.read_corpus("afriqa", None, "yor", "train", shared_root=shared)
  with pytest.raises(ValueError, match="AfriQA hau dev is the test split"):
    corpora.read_corpus("afriqa", None, "hau", "dev", shared_root=shared)


def test_unknown_corpus_and_missing_root(tmp_path):
  with _raises(ValueError, f"unknown corpus 'opus'; available: {sorted(corpora.CORPORA)}"):
    corpora.read_corpus("opus", None, "hau", "train")
  with pytest.raises(
    FileNotFoundError,
    match="no such directory .corpus hornmt; set the data root.*optical_jax.commands.fetch_data hornmt",
  ):
    corpora.read_corpus("hornmt", None, "som", shared_root=tmp_path)


# ---------------------------------------------------------------- real data (../shared/data)

MAFAND = {
  "hau": (3098, 1300, 1500),
  "ibo": (6998, 1500, 1500),
  "kin": (None, 460, 1006),
  "swa": (30782, 1791, 1835),
  "yor": (6644, 1544, 1558),
  "zul": (3500, 1239, 998),
}


@pytest.mark.parametrize("lang", sorted(MAFAND))
def test_real_mafand_counts(shared_data, lang):
  for split, n in zip(("train", "dev", "test"), MAFAND[lang]):
    if n is None:
      assert split not in corpora.CORPORA["mafand"].splits_of(lang)
      continue
    data = corpora.read_corpus("mafand", None, lang, split, shared_root=shared_data)
    assert len(data) == n and data.skipped == 0


def test_real_flores_hornmt_menyo_wmt_ciral_counts(shared_data):
  for lang in corpora.FLORES_CODES:
    assert len(corpora.read_corpus("flores200", None, lang, "dev", shared_root=shared_data)) == 997
    assert (
      len(corpora.read_corpus("flores200", None, lang, "devtest", shared_root=shared_data)) == 1012
    )
  hornmt = corpora.read_corpus("hornmt", None, "som", shared_root=shared_data)
  assert len(hornmt) == 2030 and len({p.doc_id for p in hornmt}) == 1421
  for split, n in (("train", 10070), ("dev", 3397), ("test", 6633)):
    assert len(corpora.read_corpus("menyo20k", None, "yor", split, shared_root=shared_data)) == n
  for lang, n in (("swa", 2 * 960), ("zul", 960), ("tgl", 960), ("mar", 960)):
    data = corpora.read_corpus("wmt24pp", None, lang, shared_root=shared_data)
    assert len(data) == n and data.skipped == n // 960 * 38
  ciral = {
    lang: sum(
      len(corpora.read_corpus("ciral", None, lang, s, shared_root=shared_data))
      for s in ("test-a", "test-b")
    )
    for lang in ("hau", "som", "swa", "yor")
  }
  assert ciral == {"hau": 392, "som": 338, "swa": 197, "yor": 654}
