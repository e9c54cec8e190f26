"""AfriQA as a cross-lingual retrieval collection: native questions -> English passages, with the
English translations of the same questions as the oracle (the files and rows:
:mod:`optical_jax.data.afriqa`).

The collection (:func:`afriqa_collection`):

* **Documents:** every distinct passage of every AfriQA file under the root (train and dev of
  every language, not only those queried), so the pool is the same whichever split or languages
  are tested; ``doc_id`` is a hash of title and text.
* **Queries:** for each language, the questions of its test split (:data:`TEST_SPLIT`:
  ``dev``, and ``train`` for Yoruba, which has no dev split) as ``queries/<lang>.tsv``; the
  English translations of the same questions in ``queries/en.tsv`` with the native qid plus
  ``-en`` (:data:`ENGLISH_SUFFIX`), so the oracle gap ``MAP(English) - MAP(native)`` is measured on
  the same questions and passages (``evaluation/oracle_gap.py``).
* **Relevance:** the gold passage of each question (one judged passage per query).

Rows that cannot be used are skipped and counted in ``meta.json``, never silently: a question
that is not a string (one Twi dev row holds ``NaN``), and a question whose passage is missing
(``context`` null; it has no relevant document, so it is not a query, but its question pair is
still bitext).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
from typing import Dict, List, Optional, Sequence, Union

from optical_jax.data.afriqa import (
  ENGLISH_SUFFIX,
  LANGS,
  LICENSE,
  held_out_files,
  read_afriqa,
  splits_of,
  test_split,
)
from optical_jax.testsets.collection_format import Collection, write_collection

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def doc_id_of(title: str, context: str) -> str:
  return "afriqa-" + hashlib.sha1(f"{title}\n{context}".encode("utf-8")).hexdigest()[:16]


def langs_on_disk(root: PathLike) -> List[str]:
  """The languages of :data:`LANGS` that have at least one file under ``root``."""
  return [l for l in LANGS if splits_of(root, l)]


def afriqa_collection(root: PathLike, langs: Optional[Sequence[str]] = None):
  """The dev collection (module docstring), as an in-memory ``Collection``.
  ``langs``: query languages (default: every language on disk)."""
  langs = list(langs) if langs else langs_on_disk(root)
  unknown = [l for l in langs if l not in LANGS]
  if unknown:
    raise ValueError(f"AfriQA has no language(s) {unknown}; available: {list(LANGS)}")
  docs, titles, doc_ids = {}, {}, []
  queries: Dict[str, Dict[str, str]] = {}
  english: Dict[str, str] = {}
  qrels: Dict[str, Dict[str, int]] = {}
  counts = {}
  held_out = held_out_files(root)
  missing = [l for l in langs if not splits_of(root, l)]
  if missing:
    raise FileNotFoundError(
      f"{root}: no AfriQA files for {missing} (expected "
      "<root>/<lang>/gold_span_passages.afriqa.<lang>.en.<split>.json)"
    )
  for lang in LANGS:  # the pool holds the passages of every language on disk
    for split in splits_of(root, lang):
      rows, skipped = read_afriqa(root, lang, split)
      no_passage = 0
      for r in rows:
        if not r.context:
          no_passage += 1
          continue
        d = doc_id_of(r.title, r.context)
        if d not in docs:
          doc_ids.append(d)
          docs[d] = f"{r.title}\n{r.context}" if r.title else r.context
          if r.title:
            titles[d] = r.title
        if lang in langs and split == test_split(lang):
          queries.setdefault(lang, {})[r.qid] = r.native
          english[r.qid + ENGLISH_SUFFIX] = r.english
          qrels[r.qid] = {d: 1}
          qrels[r.qid + ENGLISH_SUFFIX] = {d: 1}
      counts[f"{lang}.{split}"] = {
        "rows": len(rows) + skipped["question_not_a_string"] + skipped["repeats_test_question"],
        "question_not_a_string": skipped["question_not_a_string"],
        "no_passage": no_passage,
        "queries": len(queries.get(lang, {})) if lang in langs and split == test_split(lang) else 0,
      }
      if held_out:  # upstream's test split is under the root (module docstring)
        counts[f"{lang}.{split}"]["repeats_test_question"] = skipped["repeats_test_question"]
      if skipped["question_not_a_string"] or (no_passage and split == test_split(lang)):
        log.info(
          "AfriQA %s %s: skipped %d rows whose question is not a string, %d without a passage",
          lang,
          split,
          skipped["question_not_a_string"],
          no_passage,
        )
  queries["en"] = english
  meta = {
    "name": "afriqa_dev",
    "description": "AfriQA cross-lingual QA retrieval: native questions (test split: dev; "
    "train for yor) -> English Wikipedia passages (pool: every passage of the "
    "train and dev files); queries/en.tsv holds the human English translations "
    f"of the same questions (qid + '{ENGLISH_SUFFIX}'). One judged passage per "
    "query.",
    "license": LICENSE,
    "test_split": {l: test_split(l) for l in langs},
    "english_reference": {"lang": "en", "qid_suffix": ENGLISH_SUFFIX},
    "counts": counts,
    "documents": len(doc_ids),
  }
  if held_out:  # only then, so a root without test files keeps its meta.json as before
    meta["upstream_test_files"] = [f"{p.parent.name}/{p.name}" for p in held_out]
    meta["repeats_test_question"] = sum(c.get("repeats_test_question", 0) for c in counts.values())
  return Collection(
    name="afriqa_dev",
    doc_ids=doc_ids,
    docs=docs,
    queries=queries,
    qrels=qrels,
    meta=meta,
    titles=titles,
  )


def build_afriqa(
  root: PathLike, out_dir: PathLike, langs: Optional[Sequence[str]] = None, overwrite: bool = False
) -> pathlib.Path:
  """Writes :func:`afriqa_collection` in the collection layout eval.py reads; returns ``out_dir``."""
  coll = afriqa_collection(root, langs)
  write_collection(coll, out_dir, overwrite=overwrite)
  log.info(
    "AfriQA collection: %d passages, %s native queries -> %s",
    len(coll.doc_ids),
    {l: len(q) for l, q in coll.queries.items()},
    out_dir,
  )
  return pathlib.Path(out_dir)


def english_of(qid: str) -> str:
  """The English reference qid of a native qid."""
  return qid + ENGLISH_SUFFIX
