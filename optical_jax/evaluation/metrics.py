"""trec_eval-identical retrieval metrics (the files they read: ``testsets/trec_files.py``).

:func:`evaluate` scores a run with ``ir_measures`` on its ``pytrec_eval``
backend (trec_eval's own C code), with trec_eval ``-c`` semantics:

* a query in the qrels but absent from the run scores 0 on every measure and
  counts in the mean (``ir_measures``' ``Evaluator.iter_calc`` yields
  ``measure.DEFAULT`` = 0 for every qrels query the backend did not score;
  ``tests/evaluation/test_metrics.py`` checks the means against ``pytrec_eval`` with
  explicit zeros);
* a query in the run but not in the qrels is ignored (and counted);
* the mean is the arithmetic mean over all qrels queries.

Measure names are stable: ``MAP`` (trec_eval ``map``), ``nDCG@10``,
``nDCG@20`` (``ndcg_cut``), ``P@10``, ``R@100`` (``recall``), ``MRR``
(``recip_rank``). Any other ``ir_measures`` name the pytrec_eval backend
supports may be passed too and keeps its ``ir_measures`` spelling (``AP``, ``RR``, ``AP@100``,
``nDCG@5``...); :func:`check_measures` validates a list of names before any work.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from optical_jax.errors import UsageError

DEFAULT_MEASURES = ("MAP", "nDCG@10", "nDCG@20", "P@10", "R@100", "MRR")
#: Our stable names -> ir_measures names.
_IR_MEASURES_NAME = {"MAP": "AP", "MRR": "RR"}


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


def _parse_measures(measures: Sequence[str]):
  """Our names -> ir_measures Measure objects, checked against the pytrec_eval backend."""
  import ir_measures  # pylint: disable=import-outside-toplevel

  parsed = {}
  for name in measures:
    try:
      measure = ir_measures.parse_measure(_IR_MEASURES_NAME.get(name, name))
    except (NameError, ValueError, SyntaxError, TypeError) as e:
      reason = " ".join(str(e).split())
      raise UsageError(
        f"unknown measure {name!r} ({reason}); expected an ir_measures name such as AP, "
        f"nDCG@10, R@100, RR or P@10, or one of {', '.join(DEFAULT_MEASURES)}"
      ) from None
    if not ir_measures.pytrec_eval.supports(measure):
      raise UsageError(
        f"measure {name!r} is not computed by the pytrec_eval backend (trec_eval's measures: "
        "AP, nDCG@k, P@k, R@k, RR, ...)"
      )
    if name in parsed or measure in parsed.values():
      raise UsageError(f"measure {name!r} ({measure}) is asked for twice")
    parsed[name] = measure
  return parsed


def check_measures(measures: Sequence[str]) -> tuple:
  """The measure names as a tuple, each checked as :func:`evaluate` will parse it; a
  :class:`UsageError` naming the first unknown (or unsupported, or repeated) one. Empty: the
  defaults."""
  names = tuple(m.strip() for m in measures if m.strip()) or DEFAULT_MEASURES
  _parse_measures(names)
  return names


def evaluate(
  run: Mapping[str, Mapping[str, float]],
  qrels: Mapping[str, Mapping[str, int]],
  measures: Sequence[str] = DEFAULT_MEASURES,
  doc_ids: Optional[Iterable[str]] = None,
) -> EvalResult:
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
  scored_run = (
    run if plain else {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}
  )
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
      raise RuntimeError(
        f"{name}: ir_measures scored {len(values)} queries, expected all {len(qrels)} qrels queries"
      )
  mean = {name: math.fsum(values.values()) / len(qrels) for name, values in per_query.items()}
  return EvalResult(
    per_query=per_query,
    mean=mean,
    num_queries_scored=len(qrels),
    missing_queries=sorted(q for q in qrels if q not in run),
    extra_queries=sum(q not in qrels for q in run),
    unknown_docs=unknown,
  )
