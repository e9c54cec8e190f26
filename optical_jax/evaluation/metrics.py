"""TREC run, qrels and topic files, and trec_eval-identical retrieval metrics.

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
``FileNotFoundError``. Writes are atomic (a temporary file in the same folder,
then ``os.replace``).

:func:`evaluate` scores a run with ``ir_measures`` on its ``pytrec_eval``
backend (trec_eval's own C code), with trec_eval ``-c`` semantics:

* a query in the qrels but absent from the run scores 0 on every measure and
  counts in the mean (``ir_measures``' ``Evaluator.iter_calc`` yields
  ``measure.DEFAULT`` = 0 for every qrels query the backend did not score;
  ``tests/test_metrics.py`` checks the means against ``pytrec_eval`` with
  explicit zeros);
* a query in the run but not in the qrels is ignored (and counted);
* the mean is the arithmetic mean over all qrels queries.

Measure names are stable: ``MAP`` (trec_eval ``map``), ``nDCG@10``,
``nDCG@20`` (``ndcg_cut``), ``P@10``, ``R@100`` (``recall``), ``MRR``
(``recip_rank``). Any other ``ir_measures`` name the pytrec_eval backend
supports may be passed too and keeps its ``ir_measures`` spelling.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
import tempfile
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

PathLike = Union[str, os.PathLike]
#: qid -> doc_id -> score.
Run = Dict[str, Dict[str, float]]
#: qid -> doc_id -> relevance.
Qrels = Dict[str, Dict[str, int]]

DEFAULT_MEASURES = ("MAP", "nDCG@10", "nDCG@20", "P@10", "R@100", "MRR")
#: Our stable names -> ir_measures names.
_IR_MEASURES_NAME = {"MAP": "AP", "MRR": "RR"}
_TOPIC_LABEL = re.compile(r"^\s*(number|description|narrative)\s*:", re.IGNORECASE)
_TOPIC_TAG = re.compile(r"<(/?)(top|num|title|desc|narr)>", re.IGNORECASE)


@dataclasses.dataclass
class EvalResult:
  """What :func:`evaluate` returns.

  Attributes:
    per_query: measure name -> qid -> value, for every qrels query (0 where
      the run has no ranking for it).
    mean: measure name -> mean over all qrels queries (trec_eval ``-c``).
    num_queries_scored: how many queries the means average over (= qrels queries).
    missing_queries: qrels queries absent from the run (sorted); each scored 0.
    extra_queries: run queries absent from the qrels (ignored).
    unknown_docs: run entries whose doc id is not in ``doc_ids`` (0 without ``doc_ids``).
  """

  per_query: Dict[str, Dict[str, float]]
  mean: Dict[str, float]
  num_queries_scored: int
  missing_queries: List[str]
  extra_queries: int
  unknown_docs: int


def iter_lines(path: pathlib.Path) -> Iterator[Tuple[int, str]]:
  """(1-based line number, text) of a UTF-8 file split on ``\\n`` (``\\r\\n`` too)."""
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  raw = path.read_bytes().split(b"\n")
  if raw and raw[-1] == b"":
    raw.pop()
  for i, line in enumerate(raw, start=1):
    if line.endswith(b"\r"):
      line = line[:-1]
    if i == 1 and line.startswith(b"\xef\xbb\xbf"):
      line = line[3:]
    try:
      yield i, line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(f"{path}:{i}: invalid UTF-8 ({e.reason} at byte {e.start} of the line); "
                       "expected UTF-8 text") from None


def read_qrels(path: PathLike) -> Qrels:
  """TREC qrels ``qid iteration doc_id relevance``.

  Returns:
    qid -> doc_id -> int relevance, in file order. A repeated (qid, doc_id)
    pair, a line without exactly 4 fields or a non-integer relevance raise.
  """
  path = pathlib.Path(path)
  qrels: Qrels = {}
  for lineno, line in iter_lines(path):
    fields = line.split()
    if len(fields) != 4:
      raise ValueError(f"{path}:{lineno}: expected 4 whitespace-separated fields "
                       f"'qid iteration doc_id relevance', got {len(fields)}")
    qid, _, doc_id, rel = fields
    try:
      relevance = int(rel)
    except ValueError:
      raise ValueError(f"{path}:{lineno}: relevance {rel!r} is not an integer; "
                       "expected an integer relevance grade") from None
    judged = qrels.setdefault(qid, {})
    if doc_id in judged:
      raise ValueError(f"{path}:{lineno}: query {qid!r} judges document {doc_id!r} twice; "
                       "expected one judgment per (query, document)")
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
    fields = line.split()
    if len(fields) != 6:
      raise ValueError(f"{path}:{lineno}: expected 6 whitespace-separated fields "
                       f"'qid Q0 doc_id rank score tag', got {len(fields)}")
    qid, _, doc_id, rank, score, _ = fields
    try:
      int(rank)
      value = float(score)
    except ValueError:
      raise ValueError(f"{path}:{lineno}: rank {rank!r} / score {score!r}; "
                       "expected an integer rank and a numeric score") from None
    if not math.isfinite(value):
      raise ValueError(f"{path}:{lineno}: score {score!r} is not finite; expected a finite number")
    ranked = run.setdefault(qid, {})
    if doc_id in ranked:
      raise ValueError(f"{path}:{lineno}: query {qid!r} ranks document {doc_id!r} twice; "
                       "expected each document at most once per query")
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
      value = " ".join(_TOPIC_LABEL.sub("", text[tag_at[1]:end]).split())
      current.setdefault(tag_at[0], (value, line_of(tag_at[2])))

  for m in _TOPIC_TAG.finditer(text):
    closing, tag = m.group(1), m.group(2).lower()
    flush(m.start())
    tag_at = None
    if tag == "top" and not closing:
      if current is not None:
        raise ValueError(f"{path}:{line_of(m.start())}: <top> inside the topic opened on line "
                         f"{line_of(start)}; expected </top> first")
      current, start = {}, m.start()
    elif tag == "top":
      if current is None:
        raise ValueError(f"{path}:{line_of(m.start())}: </top> without <top>")
      num, num_line = current.get("num", ("", line_of(start)))
      check_id(f"{path}:{num_line}", "topic number", num)
      value, value_line = current.get(field, ("", line_of(start)))
      if num in first_line:
        raise ValueError(f"{path}:{num_line}: duplicate topic number {num!r} (first on line "
                         f"{first_line[num]}); expected unique topic numbers")
      if not value:
        raise ValueError(f"{path}:{value_line}: topic {num!r} has no {field} text; "
                         f"expected a non-empty <{field}>")
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
  return sorted(((d, float(s)) for d, s in scores.items()), key=lambda x: (x[1], x[0]),
                reverse=True)


def check_id(where: str, kind: str, value: str) -> None:
  """Raises ``ValueError`` (prefixed by ``where`` when given) for an empty id or one with
  whitespace."""
  if not value or any(c.isspace() for c in value):
    raise ValueError(f"{where + ': ' if where else ''}{kind} {value!r} is empty or contains "
                     "whitespace; expected a non-empty id without whitespace (TREC files are "
                     "whitespace-separated)")


def atomic_write_text(path: PathLike, text: str) -> None:
  """Writes ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


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


def _parse_measures(measures: Sequence[str]):
  """Our names -> ir_measures Measure objects, checked against the pytrec_eval backend."""
  import ir_measures  # pylint: disable=import-outside-toplevel
  parsed = {}
  for name in measures:
    try:
      measure = ir_measures.parse_measure(_IR_MEASURES_NAME.get(name, name))
    except (NameError, ValueError, SyntaxError) as e:
      raise ValueError(f"unknown measure {name!r} ({e}); expected one of {DEFAULT_MEASURES} "
                       "or an ir_measures name") from None
    if not ir_measures.pytrec_eval.supports(measure):
      raise ValueError(f"measure {name!r} is not computed by the pytrec_eval backend")
    parsed[name] = measure
  return parsed


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             measures: Sequence[str] = DEFAULT_MEASURES,
             doc_ids: Optional[Iterable[str]] = None) -> EvalResult:
  """Scores ``run`` against ``qrels`` with trec_eval ``-c`` semantics (module docstring).

  Args:
    run: qid -> doc_id -> score (higher is better).
    qrels: qid -> doc_id -> integer relevance (> 0 is relevant); not empty.
    measures: names, :data:`DEFAULT_MEASURES` by default.
    doc_ids: the collection's document ids; run documents outside it are
      counted in ``unknown_docs`` (they are still scored, as non-relevant).

  Returns:
    :class:`EvalResult`.
  """
  import ir_measures  # pylint: disable=import-outside-toplevel
  if not qrels:
    raise ValueError("qrels are empty; expected at least one judged query")
  parsed = _parse_measures(measures)
  # pytrec_eval takes only Python floats, and it skips run queries that have no judgments itself;
  # a run of floats (what read_trec_run and the searchers return) is passed as it is, uncopied.
  plain = all(set(map(type, docs.values())) <= {float} for docs in run.values())
  scored_run = run if plain else {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}
  unknown = 0
  if doc_ids is not None:
    known = doc_ids if isinstance(doc_ids, (set, frozenset)) else set(doc_ids)
    unknown = sum(d not in known for docs in run.values() for d in docs)
  judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
  evaluator = ir_measures.pytrec_eval.evaluator(list(parsed.values()), judged)
  by_measure = {m: name for name, m in parsed.items()}
  per_query: Dict[str, Dict[str, float]] = {name: {} for name in parsed}
  for metric in evaluator.iter_calc(scored_run):
    per_query[by_measure[metric.measure]][metric.query_id] = float(metric.value)
  for name, values in per_query.items():
    if set(values) != set(qrels):  # ir_measures' fill-in of missing queries, relied on above
      raise RuntimeError(f"{name}: ir_measures scored {len(values)} queries, expected all "
                         f"{len(qrels)} qrels queries")
  mean = {name: math.fsum(values.values()) / len(qrels) for name, values in per_query.items()}
  return EvalResult(
      per_query=per_query, mean=mean, num_queries_scored=len(qrels),
      missing_queries=sorted(q for q in qrels if q not in run),
      extra_queries=sum(q not in qrels for q in run), unknown_docs=unknown)
