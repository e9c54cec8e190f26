"""TREC run / qrels files and metrics: equality with pytrec_eval, trec_eval -c semantics."""

import re

import numpy as np
import pytest

from optical_jax.testsets import trec_files
from optical_jax.evaluation import metrics

pytrec_eval = pytest.importorskip("pytrec_eval")
pytest.importorskip("ir_measures")

#: our names -> pytrec_eval's result keys
_PTE = {
  "MAP": "map",
  "nDCG@10": "ndcg_cut_10",
  "nDCG@20": "ndcg_cut_20",
  "P@10": "P_10",
  "R@100": "recall_100",
  "MRR": "recip_rank",
}
_PTE_MEASURES = {"map", "ndcg_cut.10,20", "P.10", "recall.100", "recip_rank"}


def _random_case(seed=0, n_queries=30, n_docs=300):
  """Graded qrels (every query has a relevant doc) and a run with ties, over all queries."""
  rng = np.random.default_rng(seed)
  docs = [f"d{i}" for i in range(n_docs)]
  qrels, run = {}, {}
  for q in range(n_queries):
    qid = f"q{q}"
    judged = rng.choice(n_docs, size=20, replace=False)
    qrels[qid] = {docs[i]: int(rng.integers(0, 3)) for i in judged}
    qrels[qid][docs[judged[0]]] = 2
    ranked = rng.choice(n_docs, size=150, replace=False)
    scores = np.round(rng.normal(size=150), 1)  # rounding makes ties
    run[qid] = {docs[i]: float(s) for i, s in zip(ranked, scores)}
  return qrels, run


def test_equals_pytrec_eval_on_a_random_run():
  qrels, run = _random_case()
  result = metrics.evaluate(run, qrels)
  direct = pytrec_eval.RelevanceEvaluator(qrels, _PTE_MEASURES).evaluate(run)
  assert set(direct) == set(qrels)
  for name, key in _PTE.items():
    for qid in qrels:
      assert abs(result.per_query[name][qid] - direct[qid][key]) <= 1e-6, (name, qid)
    assert abs(result.mean[name] - np.mean([direct[q][key] for q in qrels])) <= 1e-6
  assert result.num_queries_scored == 30
  assert (result.missing_queries, result.extra_queries, result.unknown_docs) == ([], 0, 0)


def test_missing_query_scores_zero_and_counts_in_the_mean():
  """trec_eval -c: mean over all qrels queries, a query absent from the run contributing 0."""
  qrels, run = _random_case(seed=1)
  dropped = ["q3", "q17", "q29"]
  partial = {q: docs for q, docs in run.items() if q not in dropped}
  result = metrics.evaluate(partial, qrels)
  direct = pytrec_eval.RelevanceEvaluator(qrels, _PTE_MEASURES).evaluate(partial)
  assert set(direct) == set(qrels) - set(dropped)  # pytrec_eval alone skips them
  assert result.missing_queries == sorted(dropped)
  assert result.num_queries_scored == 30
  for name, key in _PTE.items():
    with_zeros = [direct[q][key] if q in direct else 0.0 for q in qrels]
    assert abs(result.mean[name] - np.mean(with_zeros)) <= 1e-6
    assert all(result.per_query[name][q] == 0.0 for q in dropped)
    assert result.mean[name] < np.mean([direct[q][key] for q in direct])  # not the -c-less mean


def test_extra_queries_and_unknown_docs_are_counted():
  qrels = {"q1": {"a": 1}}
  run = {"q1": {"a": 1.0, "zz": 0.5}, "q2": {"a": 1.0, "yy": 0.2}, "q3": {"b": 1.0}}
  result = metrics.evaluate(run, qrels, doc_ids={"a", "b"})
  assert result.extra_queries == 2
  assert result.unknown_docs == 2  # zz and yy, over the whole run
  assert result.mean["MAP"] == 1.0
  assert set(result.per_query["MAP"]) == {"q1"}


def test_scores_of_other_number_types_are_converted():
  """A run of Python floats goes to pytrec_eval uncopied (and unchanged); one with NumPy scalars
  or ints, which pytrec_eval rejects, is converted first and scores as the same values as floats."""
  qrels, run = _random_case(seed=4)
  before = {q: dict(docs) for q, docs in run.items()}
  metrics.evaluate(run, qrels)
  assert run == before
  kinds = (np.float32, np.float64, lambda s: int(s * 10))
  mixed = {
    q: {d: kinds[i % 3](s) for i, (d, s) in enumerate(docs.items())} for q, docs in run.items()
  }
  as_floats = {q: {d: float(s) for d, s in docs.items()} for q, docs in mixed.items()}
  assert metrics.evaluate(mixed, qrels).per_query == metrics.evaluate(as_floats, qrels).per_query


def test_hand_computed_map_on_a_tiny_example():
  qrels = {"q1": {"d1": 1, "d3": 1, "d9": 0}, "q2": {"d5": 1}, "q3": {"d7": 1}}
  run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 2.0, "d5": 1.0}}
  result = metrics.evaluate(run, qrels)
  # q1: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2; q2: rank 2 -> 1/2; q3: missing -> 0
  assert result.per_query["MAP"] == pytest.approx({"q1": 5 / 6, "q2": 0.5, "q3": 0.0})
  assert result.mean["MAP"] == pytest.approx((5 / 6 + 0.5) / 3)
  assert result.mean["MRR"] == pytest.approx((1 + 0.5) / 3)
  assert result.mean["P@10"] == pytest.approx((0.2 + 0.1) / 3)
  assert result.mean["R@100"] == pytest.approx(2 / 3)
  # nDCG@10 of q1: (1 + 1/log2(4)) / (1 + 1/log2(3))
  assert result.per_query["nDCG@10"]["q1"] == pytest.approx((1 + 0.5) / (1 + 1 / np.log2(3)))
  assert result.missing_queries == ["q3"]


def test_measure_names_and_errors():
  qrels = {"q1": {"a": 1}}
  assert list(metrics.evaluate({}, qrels).mean) == list(metrics.DEFAULT_MEASURES)
  assert metrics.evaluate({}, qrels).mean == {m: 0.0 for m in metrics.DEFAULT_MEASURES}
  assert metrics.evaluate({"q1": {"a": 1}}, qrels, measures=["nDCG@5"]).mean == {"nDCG@5": 1.0}
  with pytest.raises(ValueError, match=r"unknown measure 'FOO@3'"):
    metrics.evaluate({}, qrels, measures=["FOO@3"])
  with pytest.raises(ValueError, match=r"^qrels are empty"):
    metrics.evaluate({"q1": {"a": 1.0}}, {})


def test_run_round_trip(tmp_path):
  qrels, run = _random_case(seed=2, n_queries=5)
  run["q0"]["d0"] = float(np.float32(0.1))  # a float32 value survives exactly
  run["q0"]["d1"] = 1e-300
  path = tmp_path / "sub" / "run.trec"
  trec_files.write_trec_run(path, run, "my-tag")
  assert trec_files.read_trec_run(path) == run
  first = path.read_text().splitlines()[0].split()
  assert first[1] == "Q0" and first[3] == "1" and first[5] == "my-tag" and len(first) == 6
  assert [p.name for p in path.parent.iterdir()] == ["run.trec"]  # no temporary left behind
  assert (
    metrics.evaluate(trec_files.read_trec_run(path), qrels).mean
    == metrics.evaluate(run, qrels).mean
  )


def test_ties_break_by_doc_id_descending_as_trec_eval(tmp_path):
  run = {"q": {"a": 1.0, "b": 1.0, "c": 2.0, "d": 1.0, "B": 1.0}}
  path = tmp_path / "run.trec"
  trec_files.write_trec_run(path, run, "t")
  lines = [line.split() for line in path.read_text().splitlines()]
  assert [(x[2], x[3]) for x in lines] == [
    ("c", "1"),
    ("d", "2"),
    ("b", "3"),
    ("a", "4"),
    ("B", "5"),
  ]
  # trec_eval orders ties the same way: relevant 'a' is 4th, so RR = 1/4 from the scores alone
  direct = pytrec_eval.RelevanceEvaluator({"q": {"a": 1}}, {"recip_rank"}).evaluate(run)
  assert direct["q"]["recip_rank"] == 0.25
  by_rank = {"q": {x[2]: -float(x[3]) for x in lines}}  # scores from our ranks, no ties
  assert (
    pytrec_eval.RelevanceEvaluator({"q": {"a": 1}}, {"recip_rank"}).evaluate(by_rank)["q"][
      "recip_rank"
    ]
    == 0.25
  )


def test_write_run_rejects_bad_ids_and_scores(tmp_path):
  with pytest.raises(ValueError, match=r"tag 'my tag' is empty or contains whitespace"):
    trec_files.write_trec_run(tmp_path / "r", {"q": {"a": 1.0}}, "my tag")
  with pytest.raises(ValueError, match=r"query 'q': document id 'a b' is empty"):
    trec_files.write_trec_run(tmp_path / "r", {"q": {"a b": 1.0}}, "t")
  with pytest.raises(ValueError, match=r"query 'q', document 'a': score nan is not finite"):
    trec_files.write_trec_run(tmp_path / "r", {"q": {"a": float("nan")}}, "t")
  assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
  "content, message",
  [
    (
      "q1 Q0 d1 1 0.5\n",
      "run.trec:1: expected 6 whitespace-separated fields 'qid Q0 doc_id rank score tag', got 5",
    ),
    (
      "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 x 0.4 t\n",
      "run.trec:2: rank 'x' / score '0.4'; expected an integer rank and a numeric score",
    ),
    (
      "q1 Q0 d1 1 high t\n",
      "run.trec:1: rank '1' / score 'high'; expected an integer rank and a numeric score",
    ),
    ("q1 Q0 d1 1 nan t\n", "run.trec:1: score 'nan' is not finite; expected a finite number"),
    (
      "q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n",
      "run.trec:2: query 'q1' ranks document 'd1' twice; expected each document at most once",
    ),
  ],
)
def test_malformed_run(tmp_path, content, message):
  (tmp_path / "run.trec").write_text(content)
  with pytest.raises(ValueError, match=re.escape(message)):
    trec_files.read_trec_run(tmp_path / "run.trec")


@pytest.mark.parametrize(
  "content, message",
  [
    (
      "q1 0 d1\n",
      "qrels.txt:1: expected 4 whitespace-separated fields 'qid iteration doc_id relevance', got 3",
    ),
    (
      "q1 0 d1 1\nq1 0 d2 yes\n",
      "qrels.txt:2: relevance 'yes' is not an integer; expected an integer relevance grade",
    ),
    ("q1 0 d1 1.5\n", "qrels.txt:1: relevance '1.5' is not an integer"),
    (
      "q1 0 d1 1\nq1 0 d1 0\n",
      "qrels.txt:2: query 'q1' judges document 'd1' twice; "
      "expected one judgment per (query, document)",
    ),
    (
      b"q1 0 d1 1\nq1 0 d\xff 1\n",
      "qrels.txt:2: invalid UTF-8 (invalid start byte at byte 6 of the line); expected UTF-8 text",
    ),
  ],
)
def test_malformed_qrels(tmp_path, content, message):
  path = tmp_path / "qrels.txt"
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(ValueError, match=re.escape(message)):
    trec_files.read_qrels(path)


def test_qrels_read_and_missing_files(tmp_path):
  (tmp_path / "qrels.txt").write_text("q1 0 d1 1\r\nq1 0 d2 0\nq2 0 d1 -1\n")
  assert trec_files.read_qrels(tmp_path / "qrels.txt") == {
    "q1": {"d1": 1, "d2": 0},
    "q2": {"d1": -1},
  }
  with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope.txt'}: no such file")):
    trec_files.read_qrels(tmp_path / "nope.txt")
  with pytest.raises(FileNotFoundError, match="nope.trec: no such file"):
    trec_files.read_trec_run(tmp_path / "nope.trec")
