"""Test collections: the on-disk layout, its validation, and the NTREX / TICO-19 builders."""

import json
import re
import sys

import pytest

from optical_jax.data import bitext
from optical_jax.evaluation import metrics
from optical_jax.commands import build_collection
from optical_jax.testsets import builders
from optical_jax.testsets.collection_format import (
  Collection,
  is_language_code,
  read_trec_topics,
  write_collection,
)
from optical_jax.testsets.registry import load_collection

#: the study's languages, as NTREX names its files
NTREX_LANGS = [
  "swa",
  "som",
  "yor",
  "hau",
  "fil",
  "mar",
  "deu",
  "fra",
  "rus",
  "zho-CN",
  "arb",
  "hin",
  "spa",
]


def _write(root, docs=None, qrels="q1 0 d1 1\nq2 0 d2 1\n", queries=None, meta=None):
  """A small valid collection at ``root``; each part can be replaced (str or bytes)."""
  if docs is None:
    docs = (
      '{"doc_id": "d1", "title": "First", "text": "Body one."}\n'
      '{"doc_id": "d2", "text": "Body two."}\n'
    )
  queries = {"swa.tsv": "q1\tswali moja\nq2\tswali mbili\n"} if queries is None else queries
  (root / "queries").mkdir(parents=True)
  for name, content in (
    [("docs.jsonl", docs), ("qrels.txt", qrels)]
    + [(f"queries/{n}", c) for n, c in queries.items()]
    + ([("meta.json", json.dumps(meta))] if meta else [])
  ):
    (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
  return root


def test_load_collection(tmp_path):
  root = _write(
    tmp_path / "c",
    queries={
      "swa.tsv": "q1\tswali moja\n",
      "zho-CN.tsv": "q2\t问题\n",
      "README.md": "ignored",
      ".hidden.tsv": "ignored",
    },
    meta={"description": "known-item test built from translations"},
  )
  c = load_collection(root)
  assert c.name == "c" and c.doc_ids == ["d1", "d2"]
  assert c.docs == {"d1": "First\nBody one.", "d2": "Body two."} and c.titles == {"d1": "First"}
  assert c.queries == {"swa": {"q1": "swali moja"}, "zho-CN": {"q2": "问题"}}
  assert c.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}} and c.qrels_for(["q2", "q9"]) == {
    "q2": {"d2": 1}
  }
  assert c.meta == {"description": "known-item test built from translations"}
  assert list(load_collection(root, langs=["zho-CN"]).queries) == ["zho-CN"]
  with pytest.raises(
    FileNotFoundError,
    match=re.escape(
      f"{root / 'queries'}: no query file for ['fra', 'deu']; found ['swa', 'zho-CN']"
    ),
  ):
    load_collection(root, langs=["swa", "fra", "deu"])


def test_write_round_trip_is_atomic(tmp_path):
  c = load_collection(_write(tmp_path / "src", meta={"name": "mine"}))
  write_collection(c, tmp_path / "out")
  again = load_collection(tmp_path / "out")
  assert (
    again.name,
    again.doc_ids,
    again.docs,
    again.titles,
    again.queries,
    again.qrels,
    again.meta,
  ) == ("mine", c.doc_ids, c.docs, c.titles, c.queries, c.qrels, c.meta)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary left
  with pytest.raises(FileExistsError, match=r"out: exists and is not empty; pass overwrite=True"):
    write_collection(c, tmp_path / "out")
  c.queries = {"fra": {"q1": "question"}}
  write_collection(c, tmp_path / "out", overwrite=True)
  assert load_collection(tmp_path / "out").queries == {"fra": {"q1": "question"}}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
  bad = Collection("x", ["d1"], {"d1": "t"}, {"english": {"q": "x"}}, {"q": {"d1": 1}})
  with pytest.raises(ValueError, match="'english' is not a known language code"):
    write_collection(bad, tmp_path / "bad")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


@pytest.mark.parametrize(
  "parts, message",
  [
    (
      {"qrels": "q1 0 d1 1\nq2 0 d2\n"},
      "qrels.txt:2: expected 4 whitespace-separated fields 'qid iteration doc_id relevance', got 3",
    ),
    (
      {"qrels": "q1 0 d1 rel\n"},
      "qrels.txt:1: relevance 'rel' is not an integer; expected an integer relevance grade",
    ),
    (
      {"qrels": "q1 0 d1 1\nq1 0 d7 1\n"},
      "qrels.txt:2: document 'd7' is not in {root}/docs.jsonl; expected qrels over the "
      "collection's documents",
    ),
    (
      {
        "docs": '{"doc_id": "d1", "text": "a"}\n{"doc_id": "d2", "text": "b"}\n'
        '{"doc_id": "d1", "text": "c"}\n'
      },
      "docs.jsonl:3: duplicate doc_id 'd1' (first on line 1); expected unique document ids",
    ),
    (
      {"docs": '{"doc_id": "d1", "text": "a"}\n{"doc_id": "d2", "text": "  "}\n'},
      "docs.jsonl:2: document 'd2' has empty text; expected non-empty text",
    ),
    (
      {"docs": '{"doc_id": "d1", "text": "a"}\n{"doc_id": "d2", "text": "trunc'},
      "docs.jsonl:2: invalid or truncated JSON at column 26 (Unterminated string starting at); "
      "expected one JSON object per line",
    ),
    (
      {"docs": '{"doc_id": "d1", "text": "a"}\n["d2", "b"]\n'},
      "docs.jsonl:2: expected an object with string fields 'doc_id' and 'text' (and optionally "
      "'title')",
    ),
    (
      {"docs": '{"doc_id": "d 1", "text": "a"}\n'},
      "docs.jsonl:1: doc_id 'd 1' is empty or contains whitespace; expected a non-empty id",
    ),
    (
      {"docs": b'{"doc_id": "d1", "text": "a"}\n{"doc_id": "d2", "text": "caf\xe9"}\n'},
      "docs.jsonl:2: invalid UTF-8 (invalid continuation byte at byte 29 of the line); "
      "expected UTF-8 text",
    ),
    (
      {"queries": {"swa.tsv": "q1\tswali\nq2\tswali mbili\nq1\ttena\n"}},
      "queries/swa.tsv:3: duplicate query id 'q1' (first on line 1); expected unique query ids "
      "per language",
    ),
    (
      {"queries": {"swa.tsv": "q1\tswali\nq2\t \n"}},
      "queries/swa.tsv:2: query 'q2' has empty text; expected a query",
    ),
    (
      {"queries": {"swa.tsv": "q1\tswali\nq2 swali mbili\n"}},
      "queries/swa.tsv:2: expected 2 tab-separated fields 'qid<TAB>text', got 1",
    ),
    (
      {"queries": {"swa.tsv": b"q1\tswali\nq2\t\xc3\n"}},
      "queries/swa.tsv:2: invalid UTF-8 (unexpected end of data at byte 3 of the line); "
      "expected UTF-8 text",
    ),
    (
      {"queries": {"english.tsv": "q1\tquestion\n"}},
      "queries/english.tsv: 'english' is not a known language code; expected the file named by "
      "an ISO 639-1/639-3 code (optionally with region/script, e.g. 'swa.tsv', 'zho-CN.tsv')",
    ),
    ({"queries": {"qaa.tsv": "q1\tquestion\n"}}, "queries/qaa.tsv: 'qaa' is not a known"),
    (
      {"queries": {"swa.tsv": "q1\tx\n", "swa.trec": "<top><num>1<title>x</top>"}},
      "queries/swa.tsv: language 'swa' also has swa.trec; expected one query file per language",
    ),
  ],
)
def test_malformed_collection(tmp_path, parts, message):
  root = _write(tmp_path / "c", **parts)
  with pytest.raises(ValueError, match="^" + re.escape(f"{root}/" + message.format(root=root))):
    load_collection(root)


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'x'}: no such collection")):
    load_collection(tmp_path / "x")
  root = _write(tmp_path / "c")
  (root / "qrels.txt").unlink()
  with pytest.raises(FileNotFoundError, match=re.escape(f"{root / 'qrels.txt'}: no such file")):
    load_collection(root)
  root = _write(tmp_path / "d")
  (root / "docs.jsonl").unlink()
  with pytest.raises(FileNotFoundError, match=re.escape(f"{root / 'docs.jsonl'}: no such file")):
    load_collection(root)


_TOPICS = """<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal activity.

<narr> Narrative:
A relevant document must as a minimum identify the organization.
</top>

<top><num>302</num><title>Poliomyelitis and Post-Polio</title></top>
"""


def test_trec_topics(tmp_path):
  path = tmp_path / "topics.txt"
  path.write_text(_TOPICS)
  assert read_trec_topics(path) == {
    "301": "International Organized Crime",
    "302": "Poliomyelitis and Post-Polio",
  }
  with pytest.raises(ValueError, match=r"topics.txt:12: topic '302' has no desc text"):
    read_trec_topics(path, field="desc")
  (tmp_path / "one.txt").write_text(_TOPICS.split("</top>")[0] + "</top>")
  assert read_trec_topics(tmp_path / "one.txt", "narr") == {
    "301": "A relevant document must as a minimum identify the organization."
  }
  assert read_trec_topics(tmp_path / "one.txt", "desc") == {
    "301": "Identify organizations that participate in international criminal activity."
  }
  root = _write(
    tmp_path / "c",
    qrels="301 0 d1 1\n302 0 d2 1\n",
    queries={"eng.trec": _TOPICS, "swa.tsv": "301\tx\n"},
  )
  assert load_collection(root).queries["eng"]["302"] == "Poliomyelitis and Post-Polio"
  c = load_collection(root, langs=["en"], topics_file=path, topics_lang="en")
  assert c.queries == {
    "en": {"301": "International Organized Crime", "302": "Poliomyelitis and Post-Polio"}
  }
  with pytest.raises(ValueError, match=r"topics_lang 'topics' is not a known language code"):
    load_collection(root, topics_file=path)


@pytest.mark.parametrize(
  "text, message",
  [
    (
      "<top><num>1<title>a</top>\n<top>\n<num>1\n<title>b</top>",
      "topics.txt:3: duplicate topic number '1' (first on line 1); expected unique topic numbers",
    ),
    (
      "<top><num>1<title>a\n<top><num>2<title>b</top>",
      "topics.txt:2: <top> inside the topic opened on line 1; expected </top> first",
    ),
    ("<top><num>1<title>a</top>\n<top><num>2\n<title>b", "topics.txt:2: <top> is never closed"),
    ("<top><num>1\n<title>  \n</top>", "topics.txt:2: topic '1' has no title text"),
    ("<top><title>a</top>", "topics.txt:1: topic number '' is empty or contains whitespace"),
    ("no topics here", "topics.txt: no <top> topics found; expected classic TREC topics"),
  ],
)
def test_malformed_trec_topics(tmp_path, text, message):
  (tmp_path / "topics.txt").write_text(text)
  with pytest.raises(ValueError, match="^" + re.escape(f"{tmp_path}/{message}")):
    read_trec_topics(tmp_path / "topics.txt")


def test_language_codes():
  for code in [
    "sw",
    "swa",
    "fil",
    "tgl",
    "arb",
    "ara",
    "zho",
    "zho-CN",
    "es-LA",
    "pt-BR",
    "zh-Hans",
    "eng",
  ]:
    assert is_language_code(code), code
  for code in ["english", "xx", "xyz", "und", "mul", "qaa", "e", "sw_KE", "123", "swa-"]:
    assert not is_language_code(code), code


# ------------------------------------------------------------------- ir_datasets


def test_irds_unknown_id():
  pytest.importorskip("ir_datasets")
  with pytest.raises(
    ValueError,
    match=r"^irds:made-up/nothing: ir_datasets \S+ has no dataset "
    r"'made-up/nothing'",
  ):
    load_collection("irds:made-up/nothing")


def test_irds_not_downloaded_names_what_is_missing():
  """A real id whose files are not in ir_datasets' cache: no download is tried."""
  ir_datasets = pytest.importorskip("ir_datasets")
  cache = ir_datasets.util.home_path() / "vaswani"
  existed = cache.exists()
  if existed and any(cache.iterdir()):
    pytest.skip(f"vaswani is (partly) downloaded on this machine ({cache})")
  try:
    with pytest.raises(
      FileNotFoundError,
      match=r"^irds:vaswani: the dataset is not downloaded "
      r".*missing \['http.*npl\.tar\.gz'",
    ):
      load_collection("irds:vaswani")
    with pytest.raises(
      FileNotFoundError,
      match=r"^irds:vaswani: no queries in \['fra'\]; "
      r"found \['en'\]",
    ):
      load_collection("irds:vaswani", langs=["fra"])
  finally:
    if not existed and cache.is_dir() and not any(cache.iterdir()):
      cache.rmdir()  # ir_datasets makes the folder before it tries to download


# ------------------------------------------------------------------- NTREX-128 / TICO-19


@pytest.fixture(scope="module")
def ntrex(shared_data, tmp_path_factory):
  out = tmp_path_factory.mktemp("ntrex")
  written = builders.build_ntrex(shared_data / "ntrex128", out, NTREX_LANGS)
  return out, written[str(out)]


def test_ntrex_foreign_query(shared_data, ntrex):
  out, built = ntrex
  c = load_collection(out)
  names = [
    "swa",
    "som",
    "yor",
    "hau",
    "fil",
    "mar",
    "deu",
    "fra",
    "rus",
    "zho",
    "arb",
    "hin",
    "spa",
  ]
  assert sorted(c.queries) == sorted(names)  # zho-CN -> zho, the rest unchanged
  assert len(c.doc_ids) == 123 and len(set(c.doc_ids)) == 123
  assert all(len(q) == 123 for q in c.queries.values())
  assert c.qrels == {d: {d: 1} for d in c.doc_ids}
  assert (c.doc_ids, c.docs, c.queries, c.qrels) == (
    built.doc_ids,
    built.docs,
    built.queries,
    built.qrels,
  )
  assert c.docs["bbc.381790"].startswith(
    "Welsh AMs worried about 'looking like muppets'\nThere is consternation among some AMs"
  )
  deu = bitext.read_ntrex(shared_data / "ntrex128", "deu")
  assert c.queries["deu"]["bbc.381790"] == deu[0].foreign
  lines = {p.doc_id: 0 for p in deu}
  for p in deu:
    lines[p.doc_id] += 1
  assert sum(lines.values()) == 1997
  assert all(c.docs[d].count(" ") > 0 for d in lines)
  assert "known-item test built from translations" in c.meta["description"].lower()
  assert c.meta["license"] == "CC BY-SA 4.0" and builders.NTREX_COMMIT in c.meta["source"]
  assert c.meta["query_languages"]["zho"] == "zho-CN"
  perfect = {q: {q: 1.0} for q in c.queries["swa"]}
  assert (
    metrics.evaluate(perfect, c.qrels_for(c.queries["swa"]), doc_ids=set(c.doc_ids)).mean["MAP"]
    == 1.0
  )


def test_ntrex_english_query_and_language_names(shared_data, tmp_path):
  written = builders.build_ntrex(
    shared_data / "ntrex128", tmp_path, ["swa", "zho"], direction="english_query", with_title=False
  )
  assert sorted(written) == [str(tmp_path / "swa"), str(tmp_path / "zho")]
  c = load_collection(tmp_path / "zho")
  assert list(c.queries) == ["eng"] and len(c.queries["eng"]) == 123 and not c.titles
  assert c.queries["eng"]["bbc.381790"] == "Welsh AMs worried about 'looking like muppets'"
  zho = bitext.read_ntrex(shared_data / "ntrex128", "zho-CN")
  assert c.docs["bbc.381790"].startswith(zho[1].foreign)  # body only: line 2 onwards
  assert c.meta["document_language"] == "zho-CN"
  with pytest.raises(ValueError, match=r"no language 'klingon'; expected one of \['amh', "):
    builders.build_ntrex(shared_data / "ntrex128", tmp_path / "x", ["klingon"])
  with pytest.raises(ValueError, match=r"ntrex128: no languages requested; expected some of"):
    builders.ntrex_collection(shared_data / "ntrex128", [])
  with pytest.raises(ValueError, match=r"\['zho', 'zho-CN'\] names a language twice"):
    builders.ntrex_collection(shared_data / "ntrex128", ["zho", "zho-CN"])


def test_tico19_passages(shared_data, tmp_path):
  zips = shared_data / "tico19" / "original_zips"
  c = builders.build_tico19(zips, tmp_path / "t", ["sw", "so", "ha", "tl", "fr", "zh", "ar"])
  assert load_collection(tmp_path / "t").docs == c.docs
  assert sorted(c.queries) == ["arb", "fra", "hau", "som", "swa", "tgl", "zho"]
  assert len(c.doc_ids) == 624 and c.doc_ids[:2] == ["CMU_1:0-4", "CMU_1:5-9"]
  assert "CMU_1:140-140" in c.docs and "wiki_26:0-3" in c.docs  # short last windows
  assert all(len(q) == 3071 for q in c.queries.values()) and len(c.qrels) == 3071
  assert all(len(rel) == 1 for rel in c.qrels.values())
  fr = {p.source: p for p in bitext.read_tmx(zips / "all.en-fr.tmx.zip", "fr")}
  for qid in ["CMU_1:1", "CMU_1:47", "Wikinews_2:1101", "wiki_9:3071"]:
    (pid,) = c.qrels[qid]
    assert fr[qid].english in c.docs[pid]
  assert c.queries["tgl"]["CMU_1:1"] == "mga gaano na katagal ang mga sintomas na ito?"
  assert c.meta["segments_unquoted"]["tgl"] == 137 and c.meta["segments_unquoted"]["swa"] == 0
  assert c.meta["license"] == "CC0 1.0" and "known-item" in c.meta["description"].lower()
  overlapping = builders.tico19_collection(
    {"sw": zips / "all.en-sw.tmx.zip"}, zips / "all.en-fr.tmx.zip", window=5, stride=2
  )
  assert {len(r) for r in overlapping.qrels.values()} == {1, 2, 3}
  assert overlapping.qrels["CMU_1:5"] == {"CMU_1:0-4": 1, "CMU_1:2-6": 1, "CMU_1:4-8": 1}
  with pytest.raises(ValueError, match=r"window=2, stride=3; expected 1 <= stride <= window"):
    builders.tico19_collection({}, zips / "all.en-fr.tmx.zip", window=2, stride=3)


def test_unquote_csv():
  assert builders.unquote_csv('" a ""b"", c "') == 'a "b", c'
  assert builders.unquote_csv('"a" and "b"') == '"a" and "b"'
  assert builders.unquote_csv('""') == '""' and builders.unquote_csv("plain") == "plain"


def test_cli(shared_data, tmp_path, capsys):
  assert (
    build_collection.main(
      [
        "ntrex",
        "--source",
        str(shared_data / "ntrex128"),
        "--out",
        str(tmp_path / "n"),
        "--langs",
        "swa,zho-CN",
      ]
    )
    == 0
  )
  assert "123 documents, queries {'swa': 123, 'zho': 123}" in capsys.readouterr().out
  assert (
    build_collection.main(
      [
        "tico19",
        "--source",
        str(shared_data / "tico19/original_zips"),
        "--out",
        str(tmp_path / "t"),
        "--langs",
        "swa",
        "--window",
        "10",
        "--stride",
        "10",
      ]
    )
    == 0
  )
  assert "322 documents, queries {'swa': 3071}" in capsys.readouterr().out


# ------------------------------------------------------------------- TFDS builders


def test_tfds_ntrex_builds_from_manual_dir_without_tensorflow(shared_data, ntrex, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  from optical_jax.testsets import tfds_collections  # pylint: disable=import-outside-toplevel

  tfds_collections.prepare("ntrex_clir", "zho", tmp_path, shared_data / "ntrex128")
  source = tfds.data_source("ntrex_clir/zho", data_dir=str(tmp_path))
  docs, queries = source["documents"], source["queries"]
  _, built = ntrex
  assert [docs[i]["id"].decode() for i in range(len(docs))] == built.doc_ids
  assert docs[0]["title"].decode() + "\n" + docs[0]["text"].decode() == built.docs["bbc.381790"]
  assert len(queries) == 123
  assert queries[0]["text"].decode() == built.queries["zho"]["bbc.381790"]
  assert queries[0]["relevant"] == [b"bbc.381790"] and list(queries[0]["relevance"]) == [1]
  assert "tensorflow" not in sys.modules
  assert builders.TICO_COMMIT == tfds_collections.tfds_tico19.UPSTREAM_COMMIT


def test_tfds_ntrex_download_is_pinned_and_checked(shared_data, tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  from optical_jax.testsets import tfds_collections  # pylint: disable=import-outside-toplevel

  urls = []

  def fake_download(self, url):  # pylint: disable=unused-argument
    urls.append(url)
    rel = url.split(builders.NTREX_COMMIT + "/")[1]
    return (
      shared_data / "ntrex128" / ("DOCUMENT_IDS.tsv" if "som" in rel and len(urls) > 3 else rel)
    )

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  tfds_collections.prepare("ntrex_clir", "swa", tmp_path / "a")
  base = f"https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/{builders.NTREX_COMMIT}/"
  assert sorted(urls) == [
    base + "DOCUMENT_IDS.tsv",
    base + "NTREX-128/newstest2019-ref.swa.txt",
    base + "NTREX-128/newstest2019-src.eng.txt",
  ]
  assert len(tfds.data_source("ntrex_clir/swa", data_dir=str(tmp_path / "a"))["queries"]) == 123
  with pytest.raises(
    ValueError,
    match=r"DOCUMENT_IDS.tsv: sha256 88a8b0ff.* of "
    r".*newstest2019-ref\.som\.txt; expected 2d13c10e",
  ):
    tfds_collections.prepare("ntrex_clir", "som", tmp_path / "b")


def test_tfds_tico19_builds_from_manual_dir(shared_data, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  from optical_jax.testsets import tfds_collections  # pylint: disable=import-outside-toplevel

  zips = shared_data / "tico19" / "original_zips"
  tfds_collections.prepare("tico19_clir", "tgl", tmp_path, zips)
  source = tfds.data_source("tico19_clir/tgl", data_dir=str(tmp_path))
  built = builders.tico19_collection({"tl": zips / "all.en-tl.tmx.zip"}, zips / "all.en-fr.tmx.zip")
  docs, queries = source["documents"], source["queries"]
  assert len(docs) == 624 and len(queries) == 3071
  assert docs[0] == {
    "id": b"CMU_1:0-4",
    "title": b"",
    "text": built.docs["CMU_1:0-4"].encode(),
    "relevant": [],
    "relevance": [],
  }
  assert queries[0]["text"].decode() == built.queries["tgl"]["CMU_1:1"]
  assert queries[0]["relevant"] == [b"CMU_1:0-4"]


@pytest.mark.parametrize(
  "argv, code, message",
  [
    (["flores", "--out=O"], 2, "Flag --source must have a value other than None"),
    (["--source=S", "--out=O"], 2, "expected one collection name"),
    (["movies", "--source=S", "--out=O"], 2, "expected one collection name"),
    (["flores", "--source=S", "--out=O", "--window=3"], 2, "--window is a flag of tico19"),
    (["ntrex", "--source=S", "--out=O"], 2, "ntrex: --langs is required"),
    (["flores", "--source=S", "--out=O", "--split=test"], 2, "flag --split=test"),
    (["flores", "--source=S", "--out=O"], 1, "no such file"),
  ],
)
def test_command_line_errors_are_one_line(tmp_path, capsys, argv, code, message):
  """python -m optical_jax.testsets.builders: absl flags, a collection name before or after
  them; a bad flag, a flag of another collection or a missing input is one line."""
  argv = [
    a.replace("=S", f"={tmp_path / 'none'}").replace("=O", f"={tmp_path / 'o'}") for a in argv
  ]
  assert build_collection.main(argv) == code
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("build_collection: error: ") and message in err[0], err
  assert not (tmp_path / "o").exists()
