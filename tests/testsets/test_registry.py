"""The one registry of test collections (testsets/registry.py): names, config list parsing, data
roots, the guard's names and the study's collection folder."""

import pathlib

import ml_collections
import pytest

from configs import default
from optical_jax.testsets import registry


def test_every_name_has_a_kind_and_the_dev_checks_are_registered():
  assert registry.DEV_CHECKS == ("afriqa", "flores_devtest", "tatoeba")
  assert set(registry.BUILDABLE) <= set(registry.REGISTRY)
  kinds = {registry.QUESTION_PASSAGE, registry.KNOWN_ITEM, registry.BITEXT_MATCHING}
  assert all(s.kind in kinds for s in registry.REGISTRY.values())
  assert registry.REGISTRY["afriqa"].kind == registry.QUESTION_PASSAGE
  assert registry.REGISTRY["flores_devtest"].kind == registry.KNOWN_ITEM


@pytest.mark.parametrize(
  "value, names",
  [
    ((), ()),
    ("", ()),
    (("",), ()),
    ("afriqa, tatoeba", ("afriqa", "tatoeba")),
    (("afriqa,tatoeba",), ("afriqa", "tatoeba")),  # what --config.x=afriqa,tatoeba gives
    (["afriqa", " flores_devtest "], ("afriqa", "flores_devtest")),  # a config.json list
  ],
)
def test_parse_names(value, names):
  assert registry.parse_names(value) == names


def test_root_is_the_eval_root_or_its_folder_under_the_data_root(tmp_path):
  config = default.get_config("afriqa,flores_devtest,tatoeba")
  config.data.shared_root = str(tmp_path)
  assert registry.root(config, "afriqa") == tmp_path / "afriqa_dev"
  assert registry.root(config, "flores_devtest") == tmp_path / "flores200"
  assert registry.root(config, "tatoeba") == tmp_path / "tatoeba" / "v1"
  config.evals.flores_devtest.root = "/elsewhere"
  assert str(registry.root(config, "flores_devtest")) == "/elsewhere"
  bare = default.get_config()  # a registry name that no eval declares: its folder there
  assert registry.root(bare, "afriqa") == pathlib.Path(bare.data.shared_root) / "afriqa_dev"


def test_evals_are_declared_by_name_with_a_type():
  """config.evals.<name> = dict(type=...): a name of its own, read by evals() and select(); a
  config recorded before config.evals (retrieval.collections and its fields) reads the same."""
  config = default.get_config("tatoeba")
  with config.unlocked():
    config.evals.afriqa_hau = dict(type="afriqa", root="/a", langs=("hau",))
  assert set(registry.dev_checks(config)) == {"afriqa_hau", "tatoeba"}
  assert registry.eval_type(config, "afriqa_hau") == "afriqa"
  assert registry.eval_langs(config, "afriqa_hau") == ("hau",)
  assert str(registry.root(config, "afriqa_hau")) == "/a"
  cut = registry.select(config, ("afriqa_hau",))
  assert registry.dev_checks(cut) == ("afriqa_hau",) and len(registry.dev_checks(config)) == 2
  with pytest.raises(ValueError, match=r"config.evals has no 'flores_devtest'; it declares"):
    registry.select(config, ("flores_devtest",))
  recorded = ml_collections.ConfigDict(
    {
      "data": {"shared_root": "/s"},
      "retrieval": {
        "collections": "afriqa,tatoeba",  # a string: recorded before the fields were tuples
        "afriqa_root": "",
        "afriqa_langs": ["hau", "yor"],
        "tatoeba_root": "/t",
        "tatoeba_langs": ["swh"],
      },
    }
  )
  assert registry.evals(recorded) == {
    "afriqa": {"type": "afriqa", "root": "", "langs": ["hau", "yor"]},
    "tatoeba": {"type": "tatoeba", "root": "/t", "langs": ["swh"]},
  }
  assert registry.root(recorded, "afriqa") == pathlib.Path("/s/afriqa_dev")
  assert registry.dev_checks(registry.select(recorded, ("tatoeba",))) == ("tatoeba",)


def test_unknown_dev_check():
  with pytest.raises(ValueError, match=r"evals\.tatoeba\.type='tatoeba': not a collection"):
    registry.load_dev_collection("tatoeba", default.get_config("tatoeba"))
  with pytest.raises(ValueError, match=r"config.evals has no 'msmarco'; it declares \('afriqa',\)"):
    registry.load_dev_collection("msmarco", default.get_config("afriqa"))
  with pytest.raises(ValueError, match=r"config\.evals: unknown check 'msmarco'"):
    default.get_config("afriqa,msmarco")


def test_guard_collection_is_named_as_given(tmp_path, toy_collection):
  path = toy_collection(tmp_path)
  coll = registry.guard_collection(str(path), "")
  assert coll.name == str(path) and coll.doc_ids
  assert registry.guard_collection(coll, "") is coll


def test_study_collection_dir(tmp_path):
  c = ml_collections.ConfigDict({"builder": "dir", "source": str(tmp_path), "with_title": True})
  assert registry.study_collection_dir(c, tmp_path / "out", ["swa"]) == tmp_path
  c.builder = "movies"
  with pytest.raises(ValueError, match=r"builder='movies'; expected 'ntrex' or 'dir'"):
    registry.study_collection_dir(c, tmp_path / "out", ["swa"])
  c.builder, c.source = "ntrex", str(tmp_path / "none")
  with pytest.raises(FileNotFoundError, match=r"NTREX-128 not found at .*none"):
    registry.study_collection_dir(c, tmp_path / "out", ["swa"])
