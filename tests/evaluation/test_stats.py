"""Significance tests, Holm correction and bootstrap gap intervals."""

import numpy as np
import pytest
from scipy import stats as sps

from optical_jax.evaluation import stats


def test_paired_t_test_matches_scipy_and_missing_is_zero():
  a = {"q1": 0.5, "q2": 0.7, "q3": 0.2, "q4": 0.9}
  b = {"q1": 0.4, "q2": 0.1, "q3": 0.3}  # q4 missing -> 0
  p = stats.paired_t_test(a, b, ["q1", "q2", "q3", "q4"])
  assert p == pytest.approx(sps.ttest_rel([0.5, 0.7, 0.2, 0.9], [0.4, 0.1, 0.3, 0.0]).pvalue)
  assert stats.paired_t_test(a, a, list(a)) == 1.0


def test_holm_by_hand():
  # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04)
  np.testing.assert_allclose(stats.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
  np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])


def test_gap_values():
  g = stats.gap({"de": 0.8, "fr": 0.6, "sw": 0.3, "so": 0.1}, ["de", "fr"], ["sw", "so"])
  assert g["gap"] == pytest.approx(0.5) and g["relative_gap"] == pytest.approx(0.5 / 0.7)


def test_bootstrap_interval_covers_point_and_shrinks_with_n():
  rng = np.random.default_rng(0)
  widths = []
  for n in (30, 300):
    qids = [f"q{i}" for i in range(n)]
    pq = {
      "zs": {
        "de": dict(zip(qids, rng.random(n) * 0.4 + 0.5)),
        "sw": dict(zip(qids, rng.random(n) * 0.4 + 0.1)),
      }
    }
    pq["ot"] = {"de": pq["zs"]["de"], "sw": {q: v + 0.1 for q, v in pq["zs"]["sw"].items()}}
    ci = stats.bootstrap_gaps(
      pq, {"de": qids, "sw": qids}, ["de"], ["sw"], reference="zs", samples=500
    )
    point = np.mean(list(pq["zs"]["de"].values())) - np.mean(list(pq["zs"]["sw"].values()))
    assert ci["zs"]["gap"][0] <= point <= ci["zs"]["gap"][1]
    # ot lifts every low-resource query by exactly 0.1, so the gap change is exactly -0.1.
    np.testing.assert_allclose(ci["ot"]["delta_gap"], (-0.1, -0.1), atol=1e-9)
    widths.append(ci["zs"]["gap"][1] - ci["zs"]["gap"][0])
  assert widths[1] < widths[0]
