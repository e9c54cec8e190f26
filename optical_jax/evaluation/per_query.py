"""Per-query metrics as files: the ``trec_eval -q`` view of an :class:`EvalResult`.

``per_query.<lang>.tsv`` holds one line per (query, measure), ``qid<TAB>measure<TAB>value``
(the column order of ``ir_measures -q``), queries in sorted order and measures in the order they
were asked for, then one ``all<TAB>measure<TAB>mean`` line per measure, as ``trec_eval -q``
ends. Every judged query has its lines, a query missing from the run with value 0 (trec_eval
``-c``; the ``all`` line is the mean over them all). Values are written with ``repr``, so they
read back bit-identical (:func:`read_per_query`) for significance tests, fusion or a comparison
with ``ranx``.
"""

from __future__ import annotations

from typing import Dict, List

from optical_jax.evaluation.metrics import EvalResult
from optical_jax.io import PathLike, atomic_write_text, iter_lines

#: The query id of the mean lines, as trec_eval -q writes it.
ALL = "all"


def per_query_lines(result: EvalResult) -> List[str]:
  """``qid\\tmeasure\\tvalue`` lines of ``result`` (module docstring), without newlines."""
  measures = list(result.per_query)
  qids = sorted(set().union(*(set(v) for v in result.per_query.values()))) if measures else []
  lines = [f"{q}\t{m}\t{result.per_query[m][q]!r}" for q in qids for m in measures]
  return lines + [f"{ALL}\t{m}\t{float(result.mean[m])!r}" for m in measures]


def write_per_query(path: PathLike, result: EvalResult) -> None:
  """Writes ``per_query_lines(result)`` to ``path``, atomically."""
  atomic_write_text(path, "".join(line + "\n" for line in per_query_lines(result)))


def read_per_query(path: PathLike) -> Dict[str, Dict[str, float]]:
  """measure -> qid -> value of a file :func:`write_per_query` wrote (the ``all`` lines under
  qid ``"all"``); ValueError naming the file and line for a line of another shape."""
  out: Dict[str, Dict[str, float]] = {}
  for number, line in iter_lines(path):
    if not line:
      continue
    parts = line.split("\t")
    if len(parts) != 3:
      raise ValueError(f"{path}:{number}: expected qid<TAB>measure<TAB>value, got {line!r}")
    qid, measure, value = parts
    try:
      out.setdefault(measure, {})[qid] = float(value)
    except ValueError:
      raise ValueError(f"{path}:{number}: value {value!r} is not a number") from None
  return out
