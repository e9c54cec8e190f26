"""The oracle-gap fraction (evaluation/oracle_gap.py) on hand-computed per-query scores."""

import numpy as np
import pytest

from optical_jax.evaluation import oracle_gap


def _scores(values, prefix="q"):
  return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def test_closed_fraction_by_hand():
  qids = {"hau": [f"q{i}" for i in range(4)], "zul": [f"q{i}" for i in range(2)]}
  zs = {"hau": _scores([0.0, 0.5, 0.5, 0.0]), "zul": _scores([0.2, 0.2])}  # means .25, .2
  en = {"hau": _scores([1.0, 1.0, 0.5, 0.5]), "zul": _scores([0.6, 0.6])}  # means .75, .6
  method = {"hau": _scores([0.5, 0.5, 0.5, 0.5]), "zul": _scores([0.1, 0.1])}  # means .5, .1
  r = oracle_gap.closed_fraction(method, zs, en, qids, samples=200)
  assert r["langs"]["hau"]["gap"] == pytest.approx(0.5)
  assert r["langs"]["hau"]["closed"] == pytest.approx(0.5)  # 0.25 of 0.5
  assert r["langs"]["zul"]["closed"] == pytest.approx(-0.25)  # -0.1 of 0.4
  assert r["closed_macro"] == pytest.approx(0.125)
  assert r["closed_pooled"] == pytest.approx((0.25 - 0.1) / 2 / ((0.5 + 0.4) / 2))
  lo, hi = r["closed_pooled_ci"]
  assert lo <= r["closed_pooled"] <= hi


def test_closing_the_whole_gap_is_one_and_interval_is_tight_when_paired():
  rng = np.random.default_rng(0)
  n = 300
  qids = {"ibo": [f"q{i}" for i in range(n)]}
  zs_v = rng.uniform(0, 0.5, n)
  en_v = zs_v + rng.uniform(0.1, 0.5, n)
  zs, en = {"ibo": _scores(zs_v)}, {"ibo": _scores(en_v)}
  r = oracle_gap.closed_fraction({"ibo": _scores(en_v)}, zs, en, qids, samples=300)
  assert r["closed_pooled"] == pytest.approx(1.0)
  lo, hi = r["closed_pooled_ci"]
  assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # paired resampling: no noise
  none = oracle_gap.closed_fraction(zs, zs, en, qids, samples=300)
  assert none["closed_pooled"] == 0.0 and none["closed_pooled_ci"] == (0.0, 0.0)


def test_missing_queries_score_zero_and_english_mapping():
  qids = {"kin": ["a", "b"]}
  english = oracle_gap.english_by_native({"a-en": 1.0}, qids, "-en")
  assert english == {"kin": {"a": 1.0, "b": 0.0}}
  r = oracle_gap.closed_fraction({"kin": {"a": 0.5}}, {"kin": {}}, english, qids, samples=50)
  assert r["langs"]["kin"]["native_method"] == pytest.approx(0.25)
  assert r["langs"]["kin"]["closed"] == pytest.approx(0.5)


def test_paired_tests_pool_languages():
  qids = {"a": ["1", "2", "3"], "b": ["1", "2", "3"]}
  x = {"a": {"1": 1.0, "2": 0.9, "3": 0.8}, "b": {"1": 1.0, "2": 0.95, "3": 0.9}}
  y = {"a": {"1": 0.1, "2": 0.2, "3": 0.15}, "b": {"1": 0.2, "2": 0.1, "3": 0.3}}
  p = oracle_gap.paired_tests(x, y, qids)
  assert p["all"] < 0.001 and p["mean_difference"] > 0.6
  assert oracle_gap.paired_tests(x, x, qids)["all"] == 1.0
