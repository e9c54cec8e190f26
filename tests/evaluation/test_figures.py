"""The AfriQA study's dumbbell and forest figures (evaluation/figures.py): the points drawn are
the analysis' numbers, the files are PNGs, and the legends sit outside the axes."""

import pytest

from optical_jax.evaluation import figures, report

pytest.importorskip("matplotlib")


def _analysis():
  langs = ["hau", "yor", "zul"]
  zs, en = {"hau": 0.5, "yor": 0.55, "zul": 0.52}, {"hau": 0.86, "yor": 0.84, "zul": 0.85}
  methods = {}
  for m, gain, seeds in (("zero_shot", 0.0, 1), ("optical", 0.15, 3), ("kd_sentence", 0.12, 2)):
    per_lang = {
      l: {
        "native_method": zs[l] + gain,
        "native_zero_shot": zs[l],
        "english_zero_shot": en[l],
        "closed": gain / (en[l] - zs[l]),
        "closed_ci": [gain / (en[l] - zs[l]) - 0.05, gain / (en[l] - zs[l]) + 0.05],
        "gap": en[l] - zs[l],
      }
      for l in langs
    }
    methods[m] = {
      "seeds": seeds,
      "closed": {"langs": per_lang},
      "closed_focus": {
        "closed_pooled": gain / 0.33,
        "closed_pooled_ci": [gain / 0.33 - 0.04, gain / 0.33 + 0.04],
        "langs": per_lang,
      },
      "closed_per_seed_lang": {
        l: [per_lang[l]["closed"] + 0.01 * (i - 1) for i in range(seeds)] for l in langs
      },
    }
  methods["optical@0.5"] = methods["optical"]
  return {"langs": langs, "ranker": "dense", "methods": methods}


def test_dumbbell_points_are_the_analysis_numbers():
  a = _analysis()
  pts = figures.dumbbell_points(a)
  assert list(pts) == ["hau", "yor", "zul"]
  assert pts["hau"] == {
    "zero-shot": 0.5,
    "optical": pytest.approx(0.65),
    "kd_sentence": pytest.approx(0.62),
    "optical@0.5": pytest.approx(0.65),
    "English (oracle)": 0.86,
  }


def test_forest_rows_pool_as_the_report_does():
  a = _analysis()
  rows = figures.forest_rows(a, ["hau", "yor"], report._focus)
  assert [r["method"] for r in rows] == ["optical", "kd_sentence", "optical@0.5"]
  for r in rows:
    want = report._focus(a["methods"][r["method"]], ["hau", "yor"])
    assert r["closed"] == pytest.approx(want["closed_pooled"])
    assert r["ci"] == pytest.approx(want["closed_pooled_ci"])
    assert r["per_seed"] == pytest.approx(want["per_seed"])
  assert len(rows[0]["per_seed"]) == 3 and len(rows[1]["per_seed"]) == 2


def test_interpolated_students_share_their_methods_style_hollow():
  s = figures.method_styles(["optical", "kd_sentence", "optical@0.5"])
  assert s["optical@0.5"]["edgecolors"] == s["optical"]["edgecolors"]
  assert s["optical@0.5"]["facecolors"] == "white" and s["optical"]["facecolors"] != "white"
  assert s["kd_sentence"]["marker"] != s["optical"]["marker"]


@pytest.mark.parametrize("which", ["dumbbell", "forest"])
def test_figures_are_pngs_with_the_legend_outside_the_axes(tmp_path, monkeypatch, which):
  shown = {}
  real_save = figures._save

  def keep(fig, path):
    fig.canvas.draw()
    (ax,) = fig.axes
    shown["axes"] = ax.get_window_extent()
    shown["legend"] = ax.get_legend().get_window_extent()
    real_save(fig, path)

  monkeypatch.setattr(figures, "_save", keep)
  path = tmp_path / f"{which}.png"
  if which == "dumbbell":
    figures.plot_dumbbell(_analysis(), path)
  else:
    figures.plot_forest(_analysis(), ["hau", "yor"], path, report._focus)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert shown["legend"].x0 >= shown["axes"].x1  # right of the data, never over it
  assert not list(tmp_path.glob(".*.tmp"))
