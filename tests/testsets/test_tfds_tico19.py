"""The TICO-19 TFDS builder (testsets/tfds_tico19.py): builds from the shared zips without
TensorFlow, and checks a download's sha256."""

import shutil
import sys

import pytest

from optical_jax.data import bitext


@pytest.fixture(scope="module")
def tico_sw(shared_data):
  return bitext.read_tmx(shared_data / "tico19/original_zips/all.en-sw.tmx.zip", "sw")


@pytest.fixture(scope="module")
def tfds_tico19():
  pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("array_record")
  from optical_jax.testsets import tfds_tico19 as module  # pylint: disable=import-outside-toplevel

  return module


def test_tfds_tico19_builds_and_reads_without_tensorflow(
  shared_data, tfds_tico19, tico_sw, tmp_path
):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  builder = tfds_tico19.Tico19(config="sw", data_dir=str(tmp_path))
  builder.download_and_prepare(
    file_format="array_record",
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(shared_data / "tico19/original_zips")
    ),
  )
  source = tfds.data_source("tico19/sw", data_dir=str(tmp_path))["train"]
  assert len(source) == 3071
  assert source[0] == {
    "english": tico_sw[0].english.encode(),
    "foreign": tico_sw[0].foreign.encode(),
    "doc_id": b"CMU_1",
  }
  assert [source[i]["doc_id"].decode() for i in range(3071)] == [p.doc_id for p in tico_sw]
  assert "tensorflow" not in sys.modules


def test_tfds_tico19_download_is_checked(shared_data, tfds_tico19, tmp_path, monkeypatch):
  """No manual dir: the builder downloads (here: a stub) and checks the sha256."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  urls = []

  def fake_download(self, url):  # pylint: disable=unused-argument
    urls.append(url)
    target = tmp_path / "dl.zip"
    shutil.copy(shared_data / "tico19/original_zips/all.en-so.tmx.zip", target)
    return target

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  tfds_tico19.prepare("so", tmp_path / "data")
  assert urls == [
    f"https://raw.githubusercontent.com/tico-19/tico-19.github.io/"
    f"{tfds_tico19.UPSTREAM_COMMIT}/data/TM/all.en-so.tmx.zip"
  ]
  assert len(tfds.data_source("tico19/so", data_dir=str(tmp_path / "data"))["train"]) == 3071
  with pytest.raises(ValueError, match=r"dl\.zip: sha256 0809ea46.*; expected 665d685b"):
    tfds_tico19.prepare("sw", tmp_path / "data2")
