"""The one data root (optical_jax/data/roots.py): $OPTICAL_JAX_DATA, else ../shared/data, read by
the readers and the configs when they are built."""

from configs import default, gap_study
from optical_jax.data import corpora, roots


def test_default_is_the_shared_folder(monkeypatch):
  monkeypatch.delenv(roots.ENV, raising=False)
  assert roots.data_root() == "../shared/data" == roots.DEFAULT
  assert default.get_config().data.shared_root == "../shared/data"
  assert gap_study.get_config().collection.source == "../shared/data/ntrex128"
  monkeypatch.setenv(roots.ENV, "  ")  # empty counts as unset
  assert roots.data_root() == roots.DEFAULT


def test_the_environment_variable_moves_every_reader_and_config(monkeypatch, tmp_path):
  monkeypatch.setenv(roots.ENV, str(tmp_path))
  assert roots.data_root() == str(tmp_path)
  assert default.get_config().data.shared_root == str(tmp_path)
  assert gap_study.get_config().collection.source == f"{tmp_path}/ntrex128"
  assert corpora.default_root("mafand") == tmp_path / "mafand_mt"
