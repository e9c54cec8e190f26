"""The one registry of test collections (testsets/registry.py): names, config list parsing, data
roots, the guard's names and the study's collection folder."""

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


def test_root_is_the_config_field_or_the_folder_under_the_data_root(tmp_path):
  config = default.get_config()
  config.data.shared_root = str(tmp_path)
  assert registry.root(config, "afriqa") == tmp_path / "afriqa_dev"
  assert registry.root(config, "flores_devtest") == tmp_path / "flores200"
  assert registry.root(config, "tatoeba") == tmp_path / "tatoeba" / "v1"
  config.retrieval.flores_root = "/elsewhere"
  assert str(registry.root(config, "flores_devtest")) == "/elsewhere"


def test_unknown_dev_check():
  with pytest.raises(ValueError, match=r"unknown 'tatoeba'.*bitext-matching check"):
    registry.load_dev_collection("tatoeba", default.get_config())
  with pytest.raises(ValueError, match=r"unknown 'msmarco'; expected \('afriqa'"):
    registry.load_dev_collection("msmarco", default.get_config())


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
