"""Bitext readers on real shared data and malformed files; splits."""

import collections
import logging
import re
import zipfile

import pytest

from optical_jax.data import bitext
from optical_jax.data.bitext import BitextPair

TICO_LANGS = (
  "sw",
  "so",
  "ha",
  "mr",
  "tl",
  "zu",
  "rw",
  "om",
  "fr",
  "es-LA",
  "pt-BR",
  "ru",
  "zh",
  "ar",
  "hi",
  "id",
)


def _tmx(units):
  """A TMX document; ``units`` is a list of (tuid, [(lang, text), ...])."""
  body = "".join(
    f'<tu tuid="{tuid}">'
    + "".join(f'<tuv xml:lang="{lang}"><seg>{text}</seg></tuv>' for lang, text in tuvs)
    + "</tu>\n"
    for tuid, tuvs in units
  )
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en"/>'
    f"<body>\n{body}</body></tmx>\n"
  )


def _raises(exc, message):
  return pytest.raises(exc, match="^" + re.escape(message) + "$")


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def tico_sw(shared_data):
  return bitext.read_tmx(shared_data / "tico19/original_zips/all.en-sw.tmx.zip", "sw")


@pytest.mark.parametrize("lang", TICO_LANGS)
def test_tico19_every_pair_has_3071_segments_in_31_documents(shared_data, lang):
  data = bitext.read_tmx(shared_data / f"tico19/original_zips/all.en-{lang}.tmx.zip", lang)
  assert len(data) == 3071 and data.skipped == 0
  assert len({p.doc_id for p in data}) == 31
  assert data[0].source == "CMU_1:1" and data[-1].source == "wiki_9:3071"
  assert data[0].english == "about how long have these symptoms been going on?"


def test_tico19_sw_and_so_content(shared_data, tico_sw):
  assert tico_sw[0] == BitextPair(
    "about how long have these symptoms been going on?",
    "je, dalili hizi zimekuwa zikiendelea kwa takriban muda gani sasa?",
    "CMU_1",
    "CMU_1:1",
  )
  per_doc = collections.Counter(p.doc_id for p in tico_sw)
  assert per_doc["CMU_1"] == 141 and per_doc["Wikipedia_handpicked_1"] == 450
  assert per_doc["wiki_26"] == 4 and per_doc["PubMed_8"] == 329
  so = bitext.read_tmx(shared_data / "tico19/original_zips/all.en-so.tmx.zip", "so")
  assert len(so) == 3071 and so[0].foreign == "muddo intee dhan ayay calaamadahan socdeen?"
  assert [p.source for p in so] == [p.source for p in tico_sw]


def test_tico19_language_tags_match_by_primary_subtag(shared_data):
  zips = shared_data / "tico19/original_zips"
  es = bitext.read_tmx(zips / "all.en-es-LA.tmx.zip", "es")
  assert es[0].foreign == "¿cuánto hace más o menos que tiene estos síntomas?"
  assert bitext.read_tmx(zips / "all.en-es-LA.tmx.zip", "ES-la").pairs == es.pairs
  assert len(bitext.read_tmx(zips / "all.en-pt-BR.tmx.zip", "pt")) == 3071


@pytest.mark.parametrize("lang,count", [("swh", 390), ("tgl", 1000), ("mar", 1000), ("deu", 1000)])
def test_tatoeba_counts(shared_data, lang, count):
  data = bitext.read_tatoeba(shared_data / "tatoeba/v1", lang)
  assert len(data) == count and data.skipped == 0
  assert data[0].source == f"tatoeba.{lang}-eng.{lang}:1" and data[0].doc_id == ""
  if lang == "swh":
    assert (data[0].english, data[0].foreign) == ("He brought me coffee.", "Alinileta kahawa.")


@pytest.mark.parametrize("lang", ["som", "yor", "hau"])
def test_tatoeba_has_no_somali_yoruba_hausa(shared_data, lang):
  """The LASER Tatoeba set has no Somali, Yoruba or Hausa files."""
  directory = shared_data / "tatoeba/v1"
  with _raises(FileNotFoundError, f"{directory}/tatoeba.{lang}-eng.{lang}: no such file"):
    bitext.read_tatoeba(directory, lang)


@pytest.mark.parametrize("lang", ["swa", "som", "yor", "hau", "fil", "mar", "deu", "zho-CN"])
def test_ntrex_doc_ids(shared_data, lang):
  data = bitext.read_ntrex(shared_data / "ntrex128", lang)
  assert len(data) == 1997 and data.skipped == 0
  docs = [p.doc_id for p in data]
  assert len(set(docs)) == 123 and docs[0] == "bbc.381790"
  runs = [d for i, d in enumerate(docs) if i == 0 or docs[i - 1] != d]
  assert len(runs) == 123  # every document is one contiguous block
  assert data[0].english == "Welsh AMs worried about 'looking like muppets'"
  assert not any(p.english.endswith("\r") or p.foreign.endswith("\r") for p in data)  # CRLF files
  assert data[-1].source == f"newstest2019-ref.{lang}.txt:1997"


def test_split_by_document_is_disjoint_and_deterministic(tico_sw):
  train, test = bitext.split_by_document(tico_sw, 0.2, seed=0)
  assert len(train) + len(test) == 3071
  assert not {p.doc_id for p in train} & {p.doc_id for p in test}
  assert abs(len(test) - 614) < 60
  assert bitext.split_by_document(tico_sw.pairs, 0.2, seed=0) == (train, test)
  assert bitext.split_by_document(tico_sw, 0.2, seed=1) != (train, test)
  test_set = set(test)
  assert test == [p for p in tico_sw if p in test_set]  # input order


def test_split_without_doc_ids_splits_by_pair():
  pairs = [BitextPair(f"e{i}", f"f{i}", "doc" if i < 10 else "", str(i)) for i in range(40)]
  train, test = bitext.split_by_document(pairs, 0.25, seed=3)
  assert len(test) == 10 and len(train) == 30
  assert sum(p.doc_id == "doc" for p in test) in (0, 10)  # the document stays whole
  tr, te = bitext.split_by_pair(pairs, 0.3, seed=0)
  assert len(te) == 12 and set(tr).isdisjoint(te) and len(set(tr) | set(te)) == 40
  assert bitext.split_by_pair(pairs, 0.3, seed=0) == (tr, te)
  with _raises(ValueError, "test_fraction must be in [0, 1], got 1.5"):
    bitext.split_by_pair(pairs, 1.5)


# ---------------------------------------------------------------- malformed input


def test_tsv_reads_both_column_orders_and_crlf(tmp_path):
  p = tmp_path / "a.tsv"
  p.write_bytes("\ufeffhello\tjambo\r\n cat \tpaka\n".encode())
  data = bitext.read_tsv(p)
  assert data.pairs == [
    BitextPair("hello", "jambo", "", "a.tsv:1"),
    BitextPair("cat", "paka", "", "a.tsv:2"),
  ]
  assert bitext.read_tsv(p, english_column=1)[0] == BitextPair("jambo", "hello", "", "a.tsv:1")


def test_tsv_wrong_field_count(tmp_path, caplog):
  p = tmp_path / "bad.tsv"
  p.write_text("a\tb\nc\td\ne\tf\tg\nh\ti\n", encoding="utf-8")
  with _raises(ValueError, f"{p}:3: expected 2 tab-separated fields, got 3"):
    bitext.read_tsv(p)
  with caplog.at_level(logging.WARNING, logger="optical_jax.data.bitext"):
    data = bitext.read_tsv(p, skip_invalid=True)
  assert [x.english for x in data] == ["a", "c", "h"] and data.skipped == 1
  assert f"{p}: skipped 1 invalid records" in caplog.text


def test_tsv_undecodable_utf8(tmp_path):
  p = tmp_path / "latin1.tsv"
  p.write_bytes(b"ok\tsawa\ncaf\xe9\tkahawa\n")
  with _raises(
    ValueError,
    f"{p}:2: invalid UTF-8 (invalid continuation byte at byte 3 of the line); expected UTF-8 text",
  ):
    bitext.read_tsv(p)
  assert bitext.read_tsv(p, skip_invalid=True).skipped == 1


def test_tsv_empty_side(tmp_path):
  p = tmp_path / "empty.tsv"
  p.write_text("a\tb\nc\t  \n", encoding="utf-8")
  with _raises(
    ValueError, f"{p}:2: empty foreign text; expected a non-empty segment on both sides"
  ):
    bitext.read_tsv(p)
  with _raises(
    ValueError, f"{p}:2: empty English text; expected a non-empty segment on both sides"
  ):
    bitext.read_tsv(p, english_column=1)


def test_missing_files(tmp_path):
  with _raises(FileNotFoundError, f"{tmp_path}/nope.tsv: no such file"):
    bitext.read_tsv(tmp_path / "nope.tsv")
  with _raises(FileNotFoundError, f"{tmp_path}/nope.tmx.zip: no such file"):
    bitext.read_tmx(tmp_path / "nope.tmx.zip", "sw")
  (tmp_path / "tatoeba.swh-eng.swh").write_text("x\n", encoding="utf-8")
  with _raises(FileNotFoundError, f"{tmp_path}/tatoeba.swh-eng.eng: no such file"):
    bitext.read_tatoeba(tmp_path, "swh")
  with _raises(FileNotFoundError, f"{tmp_path}/NTREX-128/newstest2019-ref.swa.txt: no such file"):
    bitext.read_ntrex(tmp_path, "swa")


def test_parallel_files_with_different_line_counts(tmp_path):
  (tmp_path / "tatoeba.swh-eng.swh").write_text("a\nb\nc\n", encoding="utf-8")
  (tmp_path / "tatoeba.swh-eng.eng").write_text("A\nB\n", encoding="utf-8")
  foreign, english = tmp_path / "tatoeba.swh-eng.swh", tmp_path / "tatoeba.swh-eng.eng"
  with _raises(
    ValueError,
    f"{foreign}:3: line 3 has no counterpart in {english} (2 lines); "
    f"expected line-aligned files with equal line counts ({foreign} has 3)",
  ):
    bitext.read_tatoeba(tmp_path, "swh", skip_invalid=True)  # never skipped


def test_parallel_empty_line_and_utf8(tmp_path):
  foreign, english = tmp_path / "tatoeba.swh-eng.swh", tmp_path / "tatoeba.swh-eng.eng"
  foreign.write_text("a\n\nc\n", encoding="utf-8")
  english.write_text("A\nB\nC\n", encoding="utf-8")
  with _raises(
    ValueError,
    f"{foreign}:2 (English {english}:2): empty foreign text; "
    "expected a non-empty segment on both sides",
  ):
    bitext.read_tatoeba(tmp_path, "swh")
  data = bitext.read_tatoeba(tmp_path, "swh", skip_invalid=True)
  assert [p.source for p in data] == ["tatoeba.swh-eng.swh:1", "tatoeba.swh-eng.swh:3"]
  assert data.skipped == 1
  english.write_bytes(b"A\nB\n\xff\n")
  foreign.write_text("a\nb\nc\n", encoding="utf-8")
  with _raises(
    ValueError,
    f"{english}:3: invalid UTF-8 (invalid start byte at byte 0 of the line); expected UTF-8 text",
  ):
    bitext.read_tatoeba(tmp_path, "swh")


def test_ntrex_document_ids_must_align(tmp_path):
  (tmp_path / "NTREX-128").mkdir()
  (tmp_path / "NTREX-128/newstest2019-src.eng.txt").write_bytes(b"Head\r\nBody\r\nHead2\r\n")
  (tmp_path / "NTREX-128/newstest2019-ref.swa.txt").write_bytes(b"Kichwa\r\nMwili\r\nKichwa2\r\n")
  ids = tmp_path / "DOCUMENT_IDS.tsv"
  ids.write_text("d1\nd1\nd2\n", encoding="utf-8")
  data = bitext.read_ntrex(tmp_path, "swa")
  assert [(p.english, p.foreign, p.doc_id) for p in data] == [
    ("Head", "Kichwa", "d1"),
    ("Body", "Mwili", "d1"),
    ("Head2", "Kichwa2", "d2"),
  ]
  ids.write_text("d1\nd1\n", encoding="utf-8")
  with _raises(
    ValueError,
    f"{ids}: has 2 lines but {tmp_path}/NTREX-128/newstest2019-src.eng.txt "
    "has 3; expected one document id per line",
  ):
    bitext.read_ntrex(tmp_path, "swa")
  ids.write_text("d1\n\nd2\n", encoding="utf-8")
  with _raises(ValueError, f"{ids}:2: empty document id; expected one id per line"):
    bitext.read_ntrex(tmp_path, "swa")


def test_tmx_unit_without_both_languages(tmp_path, caplog):
  p = tmp_path / "t.tmx"
  p.write_text(
    _tmx(
      [
        ("D1:1", [("sw", "jambo"), ("EN-us", "hello")]),
        ("D1:2", [("en", "cat")]),
        ("D2:3", [("en", "dog"), ("sw", "mbwa")]),
      ]
    ),
    encoding="utf-8",
  )
  with _raises(
    ValueError,
    f"{p}: tu tuid='D1:2': no variant in xml:lang 'sw' (found ['en']); "
    "expected one in each language",
  ):
    bitext.read_tmx(p, "sw")
  with caplog.at_level(logging.WARNING, logger="optical_jax.data.bitext"):
    data = bitext.read_tmx(p, "sw", skip_invalid=True)
  assert data.pairs == [
    BitextPair("hello", "jambo", "D1", "D1:1"),
    BitextPair("dog", "mbwa", "D2", "D2:3"),
  ]
  assert data.skipped == 1 and f"{p}: skipped 1 invalid records" in caplog.text


def test_tmx_empty_segment_and_ambiguous_language(tmp_path):
  p = tmp_path / "t.tmx"
  p.write_text(
    _tmx([("D1:1", [("en", "hello"), ("sw", " ")]), ("D1:2", [("en", "cat"), ("sw", "paka")])]),
    encoding="utf-8",
  )
  with _raises(
    ValueError,
    f"{p}: tu tuid='D1:1': empty foreign text; expected a non-empty segment on both sides",
  ):
    bitext.read_tmx(p, "sw")
  data = bitext.read_tmx(p, "sw", skip_invalid=True)
  assert data.skipped == 1 and [x.source for x in data] == ["D1:2"]
  q = tmp_path / "es.tmx"
  q.write_text(_tmx([("D1:2", [("en", "a"), ("es-LA", "b"), ("es-ES", "c")])]), encoding="utf-8")
  with _raises(
    ValueError, f"{q}: tu tuid='D1:2': 2 variants match xml:lang 'es'; expected exactly one"
  ):
    bitext.read_tmx(q, "es")
  assert bitext.read_tmx(q, "es-la").pairs == [BitextPair("a", "b", "D1", "D1:2")]


def test_tmx_inline_markup_and_zip(tmp_path):
  tmx = (
    '<?xml version="1.0"?><tmx version="1.4"><header/><body>'
    '<tu><tuv xml:lang="en"><seg>a <bpt i="1">&lt;b&gt;</bpt>bold<ept i="1">&lt;/b&gt;</ept>'
    ' <hi>word</hi></seg></tuv><tuv xml:lang="sw"><seg>neno</seg></tuv></tu></body></tmx>'
  )
  z = tmp_path / "x.tmx.zip"
  with zipfile.ZipFile(z, "w") as zf:
    zf.writestr("x.tmx", tmx)
  data = bitext.read_tmx(z, "sw")
  assert data.pairs == [BitextPair("a bold word", "neno", "", "tu#1")] and data.path == str(z)
  two = tmp_path / "two.zip"
  with zipfile.ZipFile(two, "w") as zf:
    zf.writestr("a.tmx", tmx)
    zf.writestr("b.tmx", tmx)
  with _raises(ValueError, f"{two}: holds 2 .tmx files ['a.tmx', 'b.tmx']; expected exactly one"):
    bitext.read_tmx(two, "sw")


def test_tmx_malformed_xml(tmp_path):
  p = tmp_path / "broken.tmx"
  p.write_text(
    '<?xml version="1.0"?>\n<tmx><body>\n<tu tuid="D:1"><tuv xml:lang="en">\n'
    "<seg>x</tuv></tu></body></tmx>\n",
    encoding="utf-8",
  )
  with _raises(
    ValueError,
    f"{p}: malformed XML (mismatched tag: line 4, column 8); expected a well-formed TMX document",
  ):
    bitext.read_tmx(p, "sw")
  z = tmp_path / "broken.tmx.zip"
  with zipfile.ZipFile(z, "w") as zf:
    zf.write(p, "broken.tmx")
  with _raises(
    ValueError,
    f"{z}[broken.tmx]: malformed XML (mismatched tag: line 4, column 8); "
    "expected a well-formed TMX document",
  ):
    bitext.read_tmx(z, "sw")
