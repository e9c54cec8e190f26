"""The CLDR demo bitext, bitext-matching accuracy, and the zero-shot main job."""

import json

import numpy as np
import pytest

from optical_jax.data.cldr import cldr_bitext, split_pairs
from optical_jax.evaluation.matching import matching_accuracy

from hf_fixtures import make_checkpoint


@pytest.mark.parametrize("lang", ["sw", "so", "yo", "ha", "mr", "fil", "de", "fr", "zh"])
def test_cldr_pairs_are_real_translations(lang):
  bt = cldr_bitext(lang)
  assert len(bt.pairs) >= 100
  assert all(e.casefold() != f.casefold() for e, f in bt.pairs)
  assert len({e for e, _ in bt.pairs}) == len(bt.pairs) == len({f for _, f in bt.pairs})


def test_cldr_known_pairs():
  sw = dict(cldr_bitext("sw").pairs)
  assert sw["Germany"] == "Ujerumani"
  assert dict(cldr_bitext("de").pairs)["Germany"] == "Deutschland"
  with pytest.raises(ValueError, match="CLDR has no locale 'xx_nope'"):
    cldr_bitext("xx_nope")


def test_split_is_disjoint_and_deterministic():
  pairs = cldr_bitext("yo").pairs
  tr, te = split_pairs(pairs, 0.3, seed=0)
  assert not set(tr) & set(te) and len(tr) + len(te) == len(pairs)
  assert split_pairs(pairs, 0.3, seed=0) == (tr, te)
  assert split_pairs(pairs, 0.3, seed=1) != (tr, te)


def test_matching_accuracy():
  rng = np.random.default_rng(0)
  e = rng.normal(size=(50, 16))
  assert matching_accuracy(e + 1e-3 * rng.normal(size=e.shape), e) == {
    "f2e": 1.0,
    "e2f": 1.0,
    "n": 50,
  }
  f = e.copy()
  f[[0, 1]] = f[[1, 0]]  # two swapped rows: both directions miss those two
  acc = matching_accuracy(f, e)
  assert acc["f2e"] == acc["e2f"] == pytest.approx(48 / 50)
  same = np.ones((3, 4))  # ties are misses
  assert matching_accuracy(same, same)["f2e"] == 0.0
  for n in (0, 1):  # no other candidate: nothing measured, not accuracy 1
    with pytest.raises(ValueError, match=f"at least 2 pairs, got {n}"):
      matching_accuracy(np.ones((n, 4)), np.ones((n, 4)))


@pytest.mark.slow  # the whole job; the quick subset runs it trained in test_tiny_job_in_process_...
def test_main_job_zero_shot(tmp_path):
  """`train.py`'s library call, tiny config on a small random checkpoint."""
  from configs import tiny
  from optical_jax import experiment

  ckpt = tmp_path / "ckpt"
  make_checkpoint(ckpt, "xlm-roberta")
  config = tiny.get_config()
  config.model = str(ckpt)
  config.method = "zero_shot"
  results = experiment.train_and_evaluate(config, str(tmp_path / "work"))
  saved = json.loads((tmp_path / "work" / "results.json").read_text())
  assert saved["results"] == results["results"]
  # the demo's English anchor pairs (data.english_pairs) are a language of their own, 'eng'
  assert set(saved["results"]["zero_shot"]) == {"sw", "de", "eng"}
  for lang in ("sw", "de"):
    r = saved["results"]["zero_shot"][lang]
    assert r["n"] == 12 and 0.0 <= r["f2e"] <= 1.0
  assert saved["splits"]["eng"]["train"] == 28 + 28  # as many anchors as foreign pairs
  assert saved["splits"]["eng"]["source"] == "cldr"
  assert saved["splits"]["sw"]["train"] == 28 and saved["splits"]["sw"]["split"] == "random pairs"
  assert saved["training"] is None and not (tmp_path / "work" / "student").exists()
  assert "| sw | 12 |" in (tmp_path / "work" / "results.md").read_text()


def test_unknown_method(tmp_path):
  from configs import tiny
  from optical_jax import experiment

  config = tiny.get_config()
  config.method = "nope"
  with pytest.raises(ValueError, match=r"method='nope': expected one of"):
    experiment.train_and_evaluate(config, str(tmp_path))
  assert not tmp_path.joinpath("config.json").exists()  # refused before anything is written
