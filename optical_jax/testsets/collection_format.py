"""Retrieval test collections: one plain on-disk layout that other tools can write.

::

  <collection>/docs.jsonl          one {"doc_id": str, "text": str} per line ("title" optional)
  <collection>/qrels.txt           TREC qrels: qid 0 doc_id relevance
  <collection>/queries/<lang>.tsv  qid<TAB>query text, one file per query language
  <collection>/queries/<lang>.trec TREC topics (classic <top> format), instead of a .tsv
  <collection>/meta.json           optional, free-form (e.g. {"description": ...})

``<lang>`` is the language's ISO 639 code (``sw``/``swa``, ``fil``,
``arb``...), optionally with region or script subtags (``zho-CN``, ``es-LA``,
``zh-Hans``). It is checked with ``langcodes`` (pure Python, ships the IANA
language subtag registry, which holds every ISO 639-1 and ISO 639-3 code): the
primary subtag must be 2 or 3 letters and the tag valid; ``und``, ``mul``,
``mis``, ``zxx`` and the private-use range ``qaa``-``qtz`` are refused,
since they name no language. Other files in ``queries/`` (and names starting
with ``.``) are ignored.

Validation: every problem raises ``ValueError`` naming the file, the line and
what was expected (wrong qrels fields or non-integer relevance, duplicate doc
or query ids, empty texts, ids with whitespace, invalid or truncated JSON,
undecodable UTF-8, a bad language code, qrels naming unknown documents); a
missing file or a requested language without a query file raises
``FileNotFoundError`` (the latter listing the languages that exist).

``irds:<id>`` datasets are read by :mod:`optical_jax.testsets.irds`; callers open either kind
through :func:`optical_jax.testsets.registry.load_collection`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import tempfile
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Union

import langcodes

from optical_jax.testsets.trec_files import check_id, read_qrels, read_trec_topics
from optical_jax.io import iter_lines, sha256_file

PathLike = Union[str, os.PathLike]

_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_NOT_LANGUAGES = frozenset({"und", "mul", "mis", "zxx"})
_QUERY_SUFFIXES = (".tsv", ".trec")


@dataclasses.dataclass
class Collection:
  """A test collection in memory.

  Attributes:
    name: the folder name (or ``meta["name"]``, or the ``irds:`` id).
    doc_ids: document ids in file order.
    docs: doc_id -> the text to encode: ``title + "\\n" + text`` when the
      document has a title, else ``text``.
    queries: language code -> qid -> query text.
    qrels: qid -> doc_id -> integer relevance.
    meta: free-form, from ``meta.json`` (``{}`` without one).
    titles: doc_id -> title, for the documents that have one (so that
      :func:`write_collection` writes the title field back).
    unloaded_query_ids: the query ids of the query files not loaded (``read_collection``
      with ``langs``), so that their judgments are told apart from those of queries that are
      in no query file (those are missing from every run and score 0).
  """

  name: str
  doc_ids: List[str]
  docs: Dict[str, str]
  queries: Dict[str, Dict[str, str]]
  qrels: Dict[str, Dict[str, int]]
  meta: dict = dataclasses.field(default_factory=dict)
  titles: Dict[str, str] = dataclasses.field(default_factory=dict)
  unloaded_query_ids: FrozenSet[str] = frozenset()

  def qrels_for(self, qids: Iterable[str]) -> Dict[str, Dict[str, int]]:
    """The qrels of those of ``qids`` that have judgments."""
    return {q: self.qrels[q] for q in qids if q in self.qrels}


def is_language_code(code: str) -> bool:
  """Whether ``code`` names a language: an ISO 639-1/639-3 primary subtag
  (plus optional region/script subtags) that ``langcodes`` accepts."""
  if not _TAG.match(code):
    return False
  primary = code.split("-")[0].lower()
  if primary in _NOT_LANGUAGES or "qaa" <= primary <= "qtz":
    return False
  return langcodes.tag_is_valid(code)


def read_docs(path: PathLike):
  """``docs.jsonl`` -> (doc_ids in file order, doc_id -> text to encode, doc_id -> title)."""
  path = pathlib.Path(path)
  doc_ids, docs, titles, first_line = [], {}, {}, {}
  for lineno, line in iter_lines(path):
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(
        f"{path}:{lineno}: invalid or truncated JSON at column {e.colno} "
        f"({e.msg}); expected one JSON object per line"
      ) from None
    if (
      not isinstance(record, dict)
      or not isinstance(record.get("doc_id"), str)
      or not isinstance(record.get("text"), str)
      or not isinstance(record.get("title", ""), str)
    ):
      raise ValueError(
        f"{path}:{lineno}: expected an object with string fields 'doc_id' and "
        "'text' (and optionally 'title')"
      )
    doc_id, text, title = record["doc_id"], record["text"].strip(), record.get("title", "").strip()
    check_id(f"{path}:{lineno}", "doc_id", doc_id)
    if doc_id in first_line:
      raise ValueError(
        f"{path}:{lineno}: duplicate doc_id {doc_id!r} (first on line "
        f"{first_line[doc_id]}); expected unique document ids"
      )
    if not text:
      raise ValueError(
        f"{path}:{lineno}: document {doc_id!r} has empty text; expected non-empty text"
      )
    first_line[doc_id] = lineno
    doc_ids.append(doc_id)
    docs[doc_id] = f"{title}\n{text}" if title else text
    if title:
      titles[doc_id] = title
  return doc_ids, docs, titles


def read_queries_tsv(path: PathLike) -> Dict[str, str]:
  """``qid<TAB>query text`` per line -> qid -> text (file order)."""
  path = pathlib.Path(path)
  queries, first_line = {}, {}
  for lineno, line in iter_lines(path):
    fields = line.split("\t")
    if len(fields) != 2:
      raise ValueError(
        f"{path}:{lineno}: expected 2 tab-separated fields 'qid<TAB>text', got {len(fields)}"
      )
    qid, text = fields[0].strip(), fields[1].strip()
    check_id(f"{path}:{lineno}", "query id", qid)
    if qid in first_line:
      raise ValueError(
        f"{path}:{lineno}: duplicate query id {qid!r} (first on line "
        f"{first_line[qid]}); expected unique query ids per language"
      )
    if not text:
      raise ValueError(f"{path}:{lineno}: query {qid!r} has empty text; expected a query")
    first_line[qid] = lineno
    queries[qid] = text
  return queries


def _query_files(queries_dir: pathlib.Path) -> Dict[str, pathlib.Path]:
  """language -> its query file, checking names."""
  if not queries_dir.is_dir():
    raise FileNotFoundError(f"{queries_dir}: no such directory; expected queries/<lang>.tsv files")
  files: Dict[str, pathlib.Path] = {}
  for f in sorted(queries_dir.iterdir()):
    if f.name.startswith(".") or f.suffix not in _QUERY_SUFFIXES or not f.is_file():
      continue
    lang = f.stem
    if not is_language_code(lang):
      raise ValueError(
        f"{f}: {lang!r} is not a known language code; expected the file named "
        "by an ISO 639-1/639-3 code (optionally with region/script, e.g. "
        "'swa.tsv', 'zho-CN.tsv')"
      )
    if lang in files:
      raise ValueError(
        f"{f}: language {lang!r} also has {files[lang].name}; expected one query file per language"
      )
    files[lang] = f
  return files


def read_collection(
  path: PathLike,
  langs: Optional[Sequence[str]] = None,
  topics_file: Optional[PathLike] = None,
  topics_lang: Optional[str] = None,
  topic_field: str = "title",
) -> Collection:
  """Reads a collection folder (module docstring); ``registry.load_collection`` also opens
  ``irds:<id>`` datasets.

  Args:
    path: the collection folder.
    langs: query languages to load (default: every query file).
    topics_file: a TREC topics file to add as (or in place of) the queries of
      ``topics_lang`` (default: the file's stem when that is a language code).
    topic_field: the topic field used as query text (:func:`read_trec_topics`).

  Returns:
    :class:`Collection`. Qrels must name documents of the collection.
  """
  path = pathlib.Path(path)
  if not path.is_dir():
    raise FileNotFoundError(f"{path}: no such collection directory")
  doc_ids, docs, titles = read_docs(path / "docs.jsonl")
  qrels_path = path / "qrels.txt"
  qrels = read_qrels(qrels_path)
  if not qrels:
    raise ValueError(f"{qrels_path}: no judgments; expected 'qid 0 doc_id relevance' lines")
  for lineno, line in iter_lines(qrels_path):
    doc_id = line.split()[2]
    if doc_id not in docs:
      raise ValueError(
        f"{qrels_path}:{lineno}: document {doc_id!r} is not in "
        f"{path / 'docs.jsonl'}; expected qrels over the collection's documents"
      )
  files = (
    _query_files(path / "queries") if (path / "queries").exists() or topics_file is None else {}
  )
  if topics_file is not None:
    topics_lang = topics_lang or pathlib.Path(topics_file).stem
    if not is_language_code(topics_lang):
      raise ValueError(
        f"{topics_file}: topics_lang {topics_lang!r} is not a known language "
        "code; pass topics_lang='eng' (or another ISO 639 code)"
      )
    files[topics_lang] = pathlib.Path(topics_file)
  wanted = list(files) if langs is None else list(langs)
  missing = [lang for lang in wanted if lang not in files]
  if missing:
    raise FileNotFoundError(
      f"{path / 'queries'}: no query file for {missing}; found {sorted(files)}"
    )

  # A .tsv file is qid<TAB>text; anything else (.trec, a topics_file) is TREC topics.
  def read(lang):
    return (
      read_queries_tsv(files[lang])
      if files[lang].suffix == ".tsv"
      else read_trec_topics(files[lang], topic_field)
    )

  queries = {lang: read(lang) for lang in wanted}
  unloaded = frozenset(q for lang in files if lang not in queries for q in read(lang))
  meta = {}
  if (path / "meta.json").is_file():
    try:
      meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(
        f"{path / 'meta.json'}: not valid UTF-8 JSON ({e}); expected an object"
      ) from None
    if not isinstance(meta, dict):
      raise ValueError(f"{path / 'meta.json'}: expected a JSON object, got {type(meta).__name__}")
  return Collection(
    name=str(meta.get("name", path.name)),
    doc_ids=doc_ids,
    docs=docs,
    queries=queries,
    qrels=qrels,
    meta=meta,
    titles=titles,
    unloaded_query_ids=unloaded,
  )


def collection_fingerprint(path: PathLike) -> Dict[str, str]:
  """``{"<file>": sha256}`` of everything a collection folder's results depend on (docs.jsonl,
  qrels.txt, meta.json, every query file), so that a study notices a collection edited in
  place. ``irds:`` ids are taken as fixed datasets: ``{"irds": id}``."""
  if str(path).startswith("irds:"):
    return {"irds": str(path)[len("irds:") :]}
  path = pathlib.Path(path)
  names = ["docs.jsonl", "qrels.txt", "meta.json"] + [
    f"queries/{f.name}" for f in sorted((path / "queries").glob("*")) if f.is_file()
  ]
  return {f"collection/{n}": sha256_file(path / n) for n in names if (path / n).is_file()}


def _format_collection(collection: Collection) -> Dict[str, str]:
  """relative path -> file content, after checking the collection."""
  where = f"collection {collection.name!r}"
  if len(set(collection.doc_ids)) != len(collection.doc_ids) or set(collection.doc_ids) != set(
    collection.docs
  ):
    raise ValueError(f"{where}: doc_ids must list every key of docs exactly once")
  files, doc_lines = {}, []
  for doc_id in collection.doc_ids:
    check_id(where, "doc_id", doc_id)
    text, title = collection.docs[doc_id], collection.titles.get(doc_id, "")
    record = {"doc_id": doc_id, "text": text}
    if title and text.startswith(title + "\n"):
      record = {"doc_id": doc_id, "title": title, "text": text[len(title) + 1 :]}
    if not record["text"].strip():
      raise ValueError(f"{where}: document {doc_id!r} has empty text; expected non-empty text")
    doc_lines.append(json.dumps(record, ensure_ascii=False) + "\n")
  files["docs.jsonl"] = "".join(doc_lines)
  for qid, judged in collection.qrels.items():
    check_id(where, "qrels query id", qid)
    unknown = [d for d in judged if d not in collection.docs]
    if unknown:
      raise ValueError(f"{where}: qrels of {qid!r} name documents {unknown[:5]} not in docs")
  files["qrels.txt"] = "".join(
    f"{q} 0 {d} {int(r)}\n" for q, docs in collection.qrels.items() for d, r in docs.items()
  )
  for lang, queries in collection.queries.items():
    if not is_language_code(lang):
      raise ValueError(f"{where}: {lang!r} is not a known language code")
    for qid, text in queries.items():
      check_id(f"{where}, language {lang!r}", "query id", qid)
      if not text.strip() or "\t" in text or "\n" in text:
        raise ValueError(
          f"{where}: query {lang}/{qid} {text!r}; expected non-empty text without tabs or newlines"
        )
    files[f"queries/{lang}.tsv"] = "".join(f"{q}\t{t}\n" for q, t in queries.items())
  if collection.meta:
    files["meta.json"] = json.dumps(collection.meta, ensure_ascii=False, indent=2) + "\n"
  return files


def write_collection(collection: Collection, path: PathLike, overwrite: bool = False) -> None:
  """Writes ``collection`` in the layout above, atomically.

  Everything is written into a temporary folder beside ``path`` that is then
  renamed to ``path``. An existing non-empty ``path`` raises
  ``FileExistsError`` unless ``overwrite``; then it is moved aside, replaced,
  and deleted.
  """
  path = pathlib.Path(path)
  if path.exists() and any(path.iterdir()) and not overwrite:
    raise FileExistsError(f"{path}: exists and is not empty; pass overwrite=True to replace it")
  files = _format_collection(collection)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
  try:
    (tmp / "queries").mkdir()
    for rel, content in files.items():
      (tmp / rel).write_text(content, encoding="utf-8", newline="\n")
    old = None
    if path.exists():
      old = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
      os.rename(path, old / "c")
    try:
      os.rename(tmp, path)
    except OSError:
      if old is not None:
        os.rename(old / "c", path)
      raise
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
