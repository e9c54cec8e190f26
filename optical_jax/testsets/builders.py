"""Cross-lingual retrieval test collections: NTREX-128, TICO-19 and FLORES-200 (known-item tests
built from translations); AfriQA (a question -> passage task) is ``testsets/afriqa_passages.py``.
The command that writes them all is :mod:`optical_jax.commands.build_collection`.

Both are **known-item tests** (the relevant items are the translations of the
query, not pooled relevance judgments); ``meta.json`` says so. They are
written in the layout of :mod:`optical_jax.testsets.collection_format`.

Query files are named by ISO 639-3 codes. ``langs`` may give either the
source's code or that name:

* NTREX-128 codes are ISO 639-3 already, except ``zho-CN`` -> ``zho``
  (:data:`NTREX_QUERY_LANG`); ``arb`` (Standard Arabic) and ``fil`` (Filipino)
  stay as they are.
* TICO-19 codes (ISO 639-1 plus TICO's own regions) map by
  :data:`TICO_QUERY_LANG`: ``sw`` -> ``swa``, ``tl`` -> ``tgl`` (TICO calls it
  Tagalog; NTREX's ``fil`` is its standardised form), ``ar`` -> ``arb``
  (Modern Standard Arabic, as NTREX), ``es-LA`` (TICO's "Latin American") ->
  ``spa``, ``pt-BR`` -> ``por``, ``zh`` -> ``zho``...
"""

from __future__ import annotations

import itertools
import os
import pathlib
from typing import Dict, List, Mapping, Sequence, Tuple, Union

from optical_jax.data import bitext
from optical_jax.data.corpora import FLORES_CODES
from optical_jax.testsets.collection_format import Collection, write_collection

PathLike = Union[str, os.PathLike]

#: github.com/MicrosoftTranslator/NTREX commit of ../shared/data/ntrex128 (its PROVENANCE.md).
NTREX_COMMIT = "8561f6a622db9edad1217683e5c83daefd8bb2bf"
#: tico-19.github.io commit of ../shared/data/tico19 (= tfds_tico19.UPSTREAM_COMMIT).
TICO_COMMIT = "d97615f9cffa28ec7de571e00fbd513e5a1c7fc7"
#: NTREX code -> query file name, where they differ (every other NTREX code is kept).
NTREX_QUERY_LANG = {"zho-CN": "zho"}
#: TICO-19 code -> query file name (ISO 639-3).
TICO_QUERY_LANG = {
  "sw": "swa",
  "so": "som",
  "ha": "hau",
  "mr": "mar",
  "tl": "tgl",
  "zu": "zul",
  "rw": "kin",
  "om": "orm",
  "fr": "fra",
  "es-LA": "spa",
  "pt-BR": "por",
  "ru": "rus",
  "zh": "zho",
  "ar": "arb",
  "hi": "hin",
  "id": "ind",
}
#: TICO-19 pair whose English side the passages are cut from (see :func:`tico19_collection`).
TICO_ENGLISH_FROM = "fr"

_KNOWN_ITEM = (
  "Known-item test built from translations: each query is a human translation "
  "of (part of) an English original and the relevant items are where that "
  "original is; one relevant item per query (relevance 1), not pooled judgments."
)


def _resolve(
  langs: Sequence[str], table: Mapping[str, str], known: Sequence[str], what: str
) -> List[Tuple[str, str]]:
  """(source code, query file name) per requested language, each given either way."""
  if not langs:
    raise ValueError(f"{what}: no languages requested; expected some of {sorted(known)}")
  by_name = {table.get(code, code): code for code in known}
  out = []
  for lang in langs:
    code = lang if lang in known else by_name.get(lang)
    if code is None:
      raise ValueError(
        f"{what}: no language {lang!r}; expected one of {sorted(known)} "
        f"(or its query file name {sorted(by_name)})"
      )
    out.append((code, table.get(code, code)))
  names = [name for _, name in out]
  if len(set(names)) != len(names):
    raise ValueError(f"{what}: {list(langs)} names a language twice")
  return out


def _documents(pairs: Sequence[bitext.BitextPair], where: str):
  """Contiguous documents of ``pairs``: [(doc_id, [pairs])], checking contiguity."""
  docs, seen = [], set()
  for doc_id, group in itertools.groupby(pairs, key=lambda p: p.doc_id):
    if not doc_id or doc_id in seen:
      raise ValueError(
        f"{where}: document {doc_id!r} at {next(group).source} is empty or not "
        "contiguous; expected each document's lines together"
      )
    seen.add(doc_id)
    docs.append((doc_id, list(group)))
  return docs


def ntrex_collection(
  ntrex_dir: PathLike,
  langs: Sequence[str],
  direction: str = "foreign_query",
  with_title: bool = True,
) -> Dict[str, Collection]:
  """NTREX-128 as a document-level known-item test, in memory.

  Each of the 123 documents has its first line (the headline) as title and
  the other lines, joined by spaces, as text; a query is a headline, its qid
  the NTREX document id (``bbc.381790``), and its one relevant document the
  document with the same id (relevance 1).

  Args:
    ntrex_dir: the NTREX root (``DOCUMENT_IDS.tsv``, ``NTREX-128/``).
    langs: NTREX codes or query file names (``zho-CN`` or ``zho``).
    direction: ``foreign_query``: English documents, one query file per
      language (the translated headlines). ``english_query``: one collection
      per language, with that language's documents and the English headlines
      as ``queries/eng.tsv``.
    with_title: keep the headline in the document. Then the query is the
      translation of the document's title, a translation-retrieval task;
      ``False`` gives bodies only (lines 2..n), the harder variant.

  Returns:
    {"": collection} for ``foreign_query``; {query file name: collection}
    for ``english_query``.
  """
  if direction not in ("foreign_query", "english_query"):
    raise ValueError(f"direction {direction!r}; expected 'foreign_query' or 'english_query'")
  ntrex_dir = pathlib.Path(ntrex_dir)
  known = sorted(
    p.name[len("newstest2019-ref.") : -len(".txt")]
    for sub in ("NTREX-128", "NTREX-additional")
    if (ntrex_dir / sub).is_dir()
    for p in (ntrex_dir / sub).glob("newstest2019-ref.*.txt")
  )
  if not known:
    raise FileNotFoundError(f"{ntrex_dir / 'NTREX-128'}: no newstest2019-ref.*.txt files")
  resolved = _resolve(langs, NTREX_QUERY_LANG, known, str(ntrex_dir))
  meta = {
    "description": _KNOWN_ITEM + " NTREX-128 news documents; queries are document headlines.",
    "source": f"NTREX-128, https://github.com/MicrosoftTranslator/NTREX at commit {NTREX_COMMIT}",
    "license": "CC BY-SA 4.0",
    "direction": direction,
    "with_title": with_title,
  }
  out: Dict[str, Collection] = {}
  english_docs, queries, texts = None, {}, {}
  for code, name in resolved:
    data = bitext.read_ntrex(ntrex_dir, code)
    path = data.path
    docs = _documents(data.pairs, path)
    for doc_id, pairs in docs:
      if len(pairs) < 2:
        raise ValueError(
          f"{path}: document {doc_id!r} has {len(pairs)} line; expected a headline and a body"
        )
    english_docs = english_docs or [(d, [p.english for p in ps]) for d, ps in docs]
    queries[name] = {d: ps[0].foreign for d, ps in docs}
    texts[name] = [(d, [p.foreign for p in ps]) for d, ps in docs]

  def collection(lines, name, query_sets, lang_meta):
    doc_ids = [d for d, _ in lines]
    titles = {d: ls[0] for d, ls in lines} if with_title else {}
    body = {d: " ".join(ls[1:]) for d, ls in lines}
    return Collection(
      name=name,
      doc_ids=doc_ids,
      titles=titles,
      docs={d: f"{titles[d]}\n{body[d]}" if with_title else body[d] for d in doc_ids},
      queries=query_sets,
      qrels={d: {d: 1} for d in doc_ids},
      meta=dict(meta, name=name, documents=len(doc_ids), **lang_meta),
    )

  if direction == "foreign_query":
    out[""] = collection(
      english_docs,
      "ntrex128",
      queries,
      {"query_languages": {name: code for code, name in resolved}},
    )
  else:
    headlines = {d: ls[0] for d, ls in english_docs}
    for code, name in resolved:
      out[name] = collection(
        texts[name],
        f"ntrex128-{name}",
        {"eng": headlines},
        {"query_languages": {"eng": "eng"}, "document_language": code},
      )
  return out


def build_ntrex(
  ntrex_dir: PathLike,
  out_dir: PathLike,
  langs: Sequence[str],
  direction: str = "foreign_query",
  with_title: bool = True,
  overwrite: bool = False,
) -> Dict[str, Collection]:
  """Writes :func:`ntrex_collection` to ``out_dir`` (``foreign_query``) or to
  ``out_dir/<query file name>/`` per language (``english_query``).

  Returns:
    output folder (str) -> the collection written there.
  """
  out = {}
  for key, coll in ntrex_collection(ntrex_dir, langs, direction, with_title).items():
    path = pathlib.Path(out_dir) / key if key else pathlib.Path(out_dir)
    write_collection(coll, path, overwrite=overwrite)
    out[str(path)] = coll
  return out


#: FLORES-200 file stem per query language (ISO 639-3, as the other collections name them), in
#: the order the collection writes them; the codes are corpora.FLORES_CODES.
_FLORES_LANGS = "swa som yor hau ibo zul kin tgl mar twi bem amh xho deu fra rus zho arb hin spa"
FLORES_FILES = {lang: FLORES_CODES[lang] for lang in _FLORES_LANGS.split()}


def flores_collection(
  flores_dir: PathLike, langs: Sequence[str] = tuple(FLORES_FILES), split: str = "devtest"
) -> Collection:
  """FLORES-200 sentence retrieval: each foreign sentence of ``split`` is a query, the English
  sentences of the same split are the documents, and the relevant one is its original (line i).

  A known-item test built from translations (one relevant sentence per query). ``devtest`` is
  the held-apart check: never distil on it (``dev`` is bitext).
  """
  from optical_jax.io import iter_lines  # pylint: disable=import-outside-toplevel

  root = pathlib.Path(flores_dir) / split
  if split not in ("dev", "devtest"):
    raise ValueError(f"FLORES-200 split {split!r}; expected 'dev' or 'devtest'")
  unknown = [l for l in langs if l not in FLORES_FILES]
  if unknown:
    raise ValueError(
      f"FLORES-200 here has no language(s) {unknown}; available: {sorted(FLORES_FILES)}"
    )

  def lines(stem):
    return [t.strip() for _, t in iter_lines(root / f"{stem}.{split}")]

  english = lines("eng_Latn")
  doc_ids = [f"flores-{split}-{i}" for i in range(len(english))]
  queries = {}
  for lang in langs:
    foreign = lines(FLORES_FILES[lang])
    if len(foreign) != len(english):
      raise ValueError(
        f"{root / FLORES_FILES[lang]}.{split}: {len(foreign)} lines, English has "
        f"{len(english)}; expected line-aligned multi-way files"
      )
    queries[lang] = {f"{lang}-{i}": t for i, t in enumerate(foreign)}
  qrels = {q: {f"flores-{split}-{q.rsplit('-', 1)[1]}": 1} for qs in queries.values() for q in qs}
  meta = {
    "name": f"flores200_{split}",
    "license": "CC BY-SA 4.0 (FLORES-200)",
    "description": f"FLORES-200 {split}: foreign sentence -> its English original among "
    f"the {len(english)} English sentences. " + _KNOWN_ITEM,
  }
  return Collection(
    name=f"flores200_{split}",
    doc_ids=doc_ids,
    docs=dict(zip(doc_ids, english)),
    queries=queries,
    qrels=qrels,
    meta=meta,
  )


def unquote_csv(text: str) -> str:
  """Undoes CSV quoting (``"a ""b"" c"`` -> ``a "b" c``) that some TICO-19 TMX
  segments carry; any other text comes back unchanged."""
  if len(text) > 2 and text[0] == '"' and text[-1] == '"':
    inner = text[1:-1]
    if '"' not in inner.replace('""', "") and inner.strip():
      return inner.replace('""', '"').strip()
  return text


def _windows(n: int, window: int, stride: int) -> List[Tuple[int, int]]:
  """[start, end] (inclusive) windows covering range(n): starts 0, stride, ...
  until a window reaches the end."""
  out = []
  for start in range(0, n, stride):
    out.append((start, min(start + window, n) - 1))
    if start + window >= n:
      break
  return out


def tico19_collection(
  zips: Mapping[str, PathLike],
  english_zip: PathLike,
  window: int = 5,
  stride: int = 5,
  english_from: str = TICO_ENGLISH_FROM,
  fix_csv_quotes: bool = True,
) -> Collection:
  """TICO-19 as a passage-level known-item test, in memory.

  Passages: the English side of ``english_zip`` grouped into its documents
  (by the ``tuid`` prefix, in order), each cut into windows of ``window``
  segments every ``stride`` segments (the last window ends at the document's
  end); doc id ``DOC:start-end``, 0-based positions of the first and last
  segment within the document; text the segments joined by spaces. Queries:
  every foreign segment, qid its tuid (``CMU_1:47``); relevant (1): every
  passage holding its aligned English segment (one when ``stride == window``).

  One English side serves all languages: the ``fr`` pair's by default, which
  equals the ``ar``, ``ru``, ``zh`` and ``hi`` pairs'; in the ``ha``, ``om``,
  ``tl`` and ``zu`` pairs ~149 English segments carry CSV quoting and in
  ``sw``/``so``/``mr``/``es-LA`` 7 lost a leading apostrophe. ``meta.json``
  counts, per language, segments whose own English differs from the
  passages' after :func:`unquote_csv`.

  Args:
    zips: TICO code (``sw``, ``es-LA``...) -> its ``all.en-XX.tmx.zip``.
    english_zip: the zip the English passages come from (``english_from``'s).
    window, stride: passage size and step in segments; ``1 <= stride <= window``.
    fix_csv_quotes: apply :func:`unquote_csv` to every segment.
  """
  if not 1 <= stride <= window:
    raise ValueError(f"window={window}, stride={stride}; expected 1 <= stride <= window")
  fix = unquote_csv if fix_csv_quotes else (lambda t: t)
  reference = bitext.read_tmx(english_zip, english_from)
  doc_ids, docs, windows_of, english = [], {}, {}, {}
  for doc, pairs in _documents(reference.pairs, str(english_zip)):
    for start, end in _windows(len(pairs), window, stride):
      pid = f"{doc}:{start}-{end}"
      doc_ids.append(pid)
      docs[pid] = " ".join(fix(p.english) for p in pairs[start : end + 1])
      for p in pairs[start : end + 1]:
        windows_of.setdefault(p.source, []).append(pid)
    english.update((p.source, fix(p.english)) for p in pairs)
  queries, differs, unquoted = {}, {}, {}
  for code, path in zips.items():
    name = TICO_QUERY_LANG.get(code, code)
    data = bitext.read_tmx(path, code)
    queries[name], differs[name], unquoted[name] = {}, 0, 0
    for p in data:
      if p.source not in windows_of:
        raise ValueError(
          f"{path}: tu tuid={p.source!r} has no English segment in "
          f"{english_zip}; expected the same units in every pair"
        )
      if p.source in queries[name]:
        raise ValueError(f"{path}: tu tuid={p.source!r} appears twice; expected unique tuids")
      queries[name][p.source] = fix(p.foreign)
      unquoted[name] += queries[name][p.source] != p.foreign
      differs[name] += fix(p.english) != english[p.source]
  qids = {q for qs in queries.values() for q in qs}
  qrels = {q: {pid: 1 for pid in windows_of[q]} for q in windows_of if q in qids}
  meta = {
    "name": "tico19",
    "description": _KNOWN_ITEM + f" TICO-19 passages of {window} "
    f"English segments (stride {stride}); queries are "
    "single translated segments.",
    "source": f"TICO-19, https://github.com/tico-19/tico-19.github.io at commit "
    f"{TICO_COMMIT} (data/TM)",
    "license": "CC0 1.0",
    "window": window,
    "stride": stride,
    "english_from": english_from,
    "fix_csv_quotes": fix_csv_quotes,
    "query_languages": {TICO_QUERY_LANG.get(c, c): c for c in zips},
    "documents": len(doc_ids),
    "segments_unquoted": unquoted,
    "segments_whose_english_differs": differs,
  }
  return Collection(
    name="tico19", doc_ids=doc_ids, docs=docs, queries=queries, qrels=qrels, meta=meta
  )


def build_tico19(
  tico_dir: PathLike,
  out_dir: PathLike,
  langs: Sequence[str],
  window: int = 5,
  stride: int = 5,
  english_from: str = TICO_ENGLISH_FROM,
  fix_csv_quotes: bool = True,
  overwrite: bool = False,
) -> Collection:
  """Writes :func:`tico19_collection` of ``tico_dir/all.en-XX.tmx.zip`` to ``out_dir``.

  Args:
    langs: TICO codes or query file names (``sw`` or ``swa``).
  """
  tico_dir = pathlib.Path(tico_dir)
  known = sorted(
    p.name[len("all.en-") : -len(".tmx.zip")] for p in tico_dir.glob("all.en-*.tmx.zip")
  )
  if not known:
    raise FileNotFoundError(f"{tico_dir}: no all.en-*.tmx.zip files")
  resolved = _resolve(langs, TICO_QUERY_LANG, known, str(tico_dir))
  coll = tico19_collection(
    {code: tico_dir / f"all.en-{code}.tmx.zip" for code, _ in resolved},
    tico_dir / f"all.en-{english_from}.tmx.zip",
    window,
    stride,
    english_from,
    fix_csv_quotes,
  )
  write_collection(coll, out_dir, overwrite=overwrite)
  return coll
