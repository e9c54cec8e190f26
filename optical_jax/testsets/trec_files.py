"""TREC run, qrels and topic files.

File formats (whitespace-separated, UTF-8, one record per line):

* run: ``qid Q0 doc_id rank score tag`` (6 fields). :func:`write_trec_run`
  ranks each query's documents from 1 by descending score, ties broken by
  doc id *descending*: the order trec_eval itself sorts a run into (by score,
  then by docno with ``strcmp``; Python compares ``str`` by code point, which
  is the byte order of UTF-8, so the two agree), so the written ranks are the
  ones trec_eval evaluates.
* qrels: ``qid iteration doc_id relevance`` (4 fields, integer relevance).
* topics: classic TREC ``<top> <num> <title> <desc> <narr> </top>`` (:func:`read_trec_topics`).

Ids may not contain whitespace. Malformed lines raise ``ValueError`` naming
the file, the line and what was expected; a missing file raises
``FileNotFoundError``. Lines are read by ``optical_jax.io.iter_lines`` and
written atomically by ``optical_jax.io.atomic_write_text``.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from typing import Dict, List, Mapping, Tuple, Union

from optical_jax.io import atomic_write_text, iter_lines

PathLike = Union[str, os.PathLike]
#: qid -> doc_id -> score.
Run = Dict[str, Dict[str, float]]
#: qid -> doc_id -> relevance.
Qrels = Dict[str, Dict[str, int]]

_TOPIC_LABEL = re.compile(r"^\s*(number|description|narrative)\s*:", re.IGNORECASE)
_TOPIC_TAG = re.compile(r"<(/?)(top|num|title|desc|narr)>", re.IGNORECASE)


def _fields(path: pathlib.Path, lineno: int, line: str, layout: str) -> List[str]:
  """The whitespace-separated fields of a TREC line; ValueError naming the file and line when
  there are not as many as ``layout`` names."""
  fields = line.split()
  if len(fields) != len(layout.split()):
    raise ValueError(
      f"{path}:{lineno}: expected {len(layout.split())} whitespace-separated fields "
      f"'{layout}', got {len(fields)}"
    )
  return fields


def read_qrels(path: PathLike) -> Qrels:
  """TREC qrels ``qid iteration doc_id relevance``.

  Returns:
    qid -> doc_id -> int relevance, in file order. A repeated (qid, doc_id)
    pair, a line without exactly 4 fields or a non-integer relevance raise.
  """
  path = pathlib.Path(path)
  qrels: Qrels = {}
  for lineno, line in iter_lines(path):
    qid, _, doc_id, rel = _fields(path, lineno, line, "qid iteration doc_id relevance")
    try:
      relevance = int(rel)
    except ValueError:
      raise ValueError(
        f"{path}:{lineno}: relevance {rel!r} is not an integer; expected an integer relevance grade"
      ) from None
    judged = qrels.setdefault(qid, {})
    if doc_id in judged:
      raise ValueError(
        f"{path}:{lineno}: query {qid!r} judges document {doc_id!r} twice; "
        "expected one judgment per (query, document)"
      )
    judged[doc_id] = relevance
  return qrels


def read_trec_run(path: PathLike) -> Run:
  """A TREC run ``qid Q0 doc_id rank score tag``.

  Returns:
    qid -> doc_id -> float score. The rank column is checked to be an
    integer but, as in trec_eval, only the scores order the documents.
  """
  path = pathlib.Path(path)
  run: Run = {}
  for lineno, line in iter_lines(path):
    qid, _, doc_id, rank, score, _ = _fields(path, lineno, line, "qid Q0 doc_id rank score tag")
    try:
      int(rank)
      value = float(score)
    except ValueError:
      raise ValueError(
        f"{path}:{lineno}: rank {rank!r} / score {score!r}; "
        "expected an integer rank and a numeric score"
      ) from None
    if not math.isfinite(value):
      raise ValueError(f"{path}:{lineno}: score {score!r} is not finite; expected a finite number")
    ranked = run.setdefault(qid, {})
    if doc_id in ranked:
      raise ValueError(
        f"{path}:{lineno}: query {qid!r} ranks document {doc_id!r} twice; "
        "expected each document at most once per query"
      )
    ranked[doc_id] = value
  return run


def read_trec_topics(path: PathLike, field: str = "title") -> Dict[str, str]:
  """Classic TREC topics (``<top> <num> Number: 301 <title> ... </top>``) -> qid -> text.

  Args:
    path: the topics file (tags may be closed, ``<title>...</title>``, or not).
    field: ``title``, ``desc`` or ``narr``; the ``Number:`` / ``Description:``
      / ``Narrative:`` labels are dropped and whitespace is collapsed.
  """
  if field not in ("title", "desc", "narr"):
    raise ValueError(f"field {field!r}; expected 'title', 'desc' or 'narr'")
  path = pathlib.Path(path)
  text = "\n".join(line for _, line in iter_lines(path))
  topics, first_line = {}, {}
  current, start, tag_at = None, 0, None

  def line_of(offset: int) -> int:
    return text.count("\n", 0, offset) + 1

  def flush(end: int) -> None:
    if current is not None and tag_at is not None:
      value = " ".join(_TOPIC_LABEL.sub("", text[tag_at[1] : end]).split())
      current.setdefault(tag_at[0], (value, line_of(tag_at[2])))

  for m in _TOPIC_TAG.finditer(text):
    closing, tag = m.group(1), m.group(2).lower()
    flush(m.start())
    tag_at = None
    if tag == "top" and not closing:
      if current is not None:
        raise ValueError(
          f"{path}:{line_of(m.start())}: <top> inside the topic opened on line "
          f"{line_of(start)}; expected </top> first"
        )
      current, start = {}, m.start()
    elif tag == "top":
      if current is None:
        raise ValueError(f"{path}:{line_of(m.start())}: </top> without <top>")
      num, num_line = current.get("num", ("", line_of(start)))
      check_id(f"{path}:{num_line}", "topic number", num)
      value, value_line = current.get(field, ("", line_of(start)))
      if num in first_line:
        raise ValueError(
          f"{path}:{num_line}: duplicate topic number {num!r} (first on line "
          f"{first_line[num]}); expected unique topic numbers"
        )
      if not value:
        raise ValueError(
          f"{path}:{value_line}: topic {num!r} has no {field} text; expected a non-empty <{field}>"
        )
      first_line[num], topics[num], current = num_line, value, None
    elif current is None:
      raise ValueError(f"{path}:{line_of(m.start())}: <{tag}> outside <top>...</top>")
    elif not closing:
      tag_at = (tag, m.end(), m.start())
  if current is not None:
    raise ValueError(f"{path}:{line_of(start)}: <top> is never closed; expected </top>")
  if not topics:
    raise ValueError(f"{path}: no <top> topics found; expected classic TREC topics")
  return topics


def ranking(scores: Mapping[str, float]) -> List[Tuple[str, float]]:
  """``(doc_id, score)`` best first: descending score, ties by doc id descending (trec_eval)."""
  return sorted(
    ((d, float(s)) for d, s in scores.items()), key=lambda x: (x[1], x[0]), reverse=True
  )


def check_id(where: str, kind: str, value: str) -> None:
  """Raises ``ValueError`` (prefixed by ``where`` when given) for an empty id or one with
  whitespace."""
  if not value or any(c.isspace() for c in value):
    raise ValueError(
      f"{where + ': ' if where else ''}{kind} {value!r} is empty or contains "
      "whitespace; expected a non-empty id without whitespace (TREC files are "
      "whitespace-separated)"
    )


def run_tag(name: str) -> str:
  """A TREC run tag (column 6) from a model name or path: its whitespace runs replaced by ``_``;
  ``"optical_jax"`` for an empty name."""
  return "_".join(str(name).split()) or "optical_jax"


def write_trec_run(path: PathLike, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
  """Writes ``run`` (qid -> doc_id -> score) as a 6-column TREC run, atomically.

  Queries are written in sorted qid order; within a query ranks start at 1
  and follow :func:`ranking`. Scores are written with ``repr`` so they read
  back bit-identical.
  """
  check_id("", "tag", tag)
  out = []
  for qid in sorted(run):
    check_id("", "query id", qid)
    for rank, (doc_id, score) in enumerate(ranking(run[qid]), start=1):
      check_id(f"query {qid!r}", "document id", doc_id)
      if not math.isfinite(score):
        raise ValueError(f"query {qid!r}, document {doc_id!r}: score {score} is not finite")
      out.append(f"{qid} Q0 {doc_id} {rank} {score!r} {tag}\n")
  atomic_write_text(path, "".join(out))
