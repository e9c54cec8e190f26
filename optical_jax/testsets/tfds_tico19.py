"""TICO-19 bitext as a tensorflow-datasets builder that needs no TensorFlow.

TICO-19 (Anastasopoulos et al. 2020, CC0) is 3,071 COVID-19 segments from 31
English documents, professionally translated. Upstream ships them as one TMX
translation memory per language pair, zipped: ``data/TM/all.en-XX.tmx.zip`` in
https://github.com/tico-19/tico-19.github.io. One builder config per language
(:data:`LANGUAGES`); each example is one segment pair with its document id.

The dataset is written as ``array_record`` and meant to be read with
``tfds.data_source`` (random access, plain numpy/bytes, no TensorFlow)::

  from optical_jax.testsets import tfds_tico19  # registers "tico19"
  import tensorflow_datasets as tfds
  builder = tfds_tico19.Tico19(config="sw", data_dir=DATA_DIR)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=".../tico19/original_zips"))
  source = tfds.data_source("tico19/sw", data_dir=DATA_DIR)["train"]
  source[0]  # {'english': b'...', 'foreign': b'...', 'doc_id': b'CMU_1'}

Examples keep the upstream order (``disable_shuffling``): documents are
contiguous and segments in order, as in the TMX. Text features come back as
UTF-8 ``bytes`` from a data source. Without a manual dir holding
``all.en-XX.tmx.zip`` the zip is downloaded from the upstream repository at the
commit our shared copy was taken from, and its sha256 is checked.

Tested with ``tensorflow-datasets==4.9.10``, ``array-record==0.8.6`` and
``importlib_resources`` (tfds 4.9.10 imports it on Python 3.11 but does not
declare it), with numpy 2.4 and jax 0.10; TensorFlow is not installed. The
``tfds build`` CLI does need TensorFlow (its ``convert_format`` command
annotates with ``tf.train.Example`` at import), and so does
``tfds.list_builders()`` (the community-catalog lookup touches ``tf.errors``);
use :func:`prepare` or the Python API above instead.

There is one split, ``train``: upstream's official dev/test labels live in a
separate archive that this builder does not read; use
:func:`optical_jax.data.bitext.split_by_document` for a document-disjoint split.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Optional, Union

import tensorflow_datasets as tfds

from optical_jax.data import bitext
from optical_jax.io import sha256_file

logger = logging.getLogger(__name__)

#: TICO-19 language codes paired with English, as in the upstream file names.
LANGUAGES = (
  "sw",
  "so",
  "ha",
  "mr",
  "tl",
  "zu",
  "rw",
  "om",
  "fr",
  "es-LA",
  "pt-BR",
  "ru",
  "zh",
  "ar",
  "hi",
  "id",
)

#: Upstream commit of github.com/tico-19/tico-19.github.io that the checksums below belong to.
UPSTREAM_COMMIT = "d97615f9cffa28ec7de571e00fbd513e5a1c7fc7"
_URL = (
  "https://raw.githubusercontent.com/tico-19/tico-19.github.io/"
  f"{UPSTREAM_COMMIT}/data/TM/all.en-{{lang}}.tmx.zip"
)

#: sha256 of ``all.en-XX.tmx.zip`` at :data:`UPSTREAM_COMMIT` (our copies match its git blob ids).
SHA256 = {
  "ar": "9f08855934280255d0da67accb921939a64e8c72fdcca9ede0f473bf36a09468",
  "es-LA": "f99ead6835c6e039424c3a425fc5bda56e89d1b901b0aeb461c40455ac5fa185",
  "fr": "6163c12be9aca3fd11a2d86f762f61d7f5f0608b22afb60bab6e5415d9c455e2",
  "ha": "b7f3f33ceb54edacd162b908a5f7c1463bb2be3ef7348cd2396084b25d7c897d",
  "hi": "15f0c198bf872e190fdbb0bb7b009ecc78a7cb6d36f6f6e727e7f6d64d2b8365",
  "id": "92f5678617da3f69d6f1227aa4a918100f9230f53b19a4105598e9828a176c84",
  "mr": "b6c45e13d5c46cef715c7462449830917ab6156b9610d3cd485a1729ef1ec21e",
  "om": "4eedef554cf4975f8f6150ef333786f1582765951558280d1d84b0c968d352e9",
  "pt-BR": "e82ca59c00cd124e033101618acdb3d071c57183e237998b12f5518d6be3df2c",
  "ru": "efe7076a35e82bb0987d4e2e768f1729190acc6fd15c4a821362afd10d600994",
  "rw": "97b31ed64a75e64be9e25bd14273149ca96345d5adbbef1b7066426ac56a59d6",
  "so": "0809ea465dafd09dcf871d084ede5a2add08f8a5e9cca884304f21a4187bfa2a",
  "sw": "665d685b739044f805d254494f6da8f93761f71767b5f63582f8b5792c6c8a06",
  "tl": "dca3dba5e39008fbcf9c0cece64c5e83352c87f48bebf7c3f8c76a8e1887c725",
  "zh": "094d85c551124723d3ada75db50272c7301bd045df4805eb38e2060b51bfe80d",
  "zu": "e9d81f44f92ee9883852d88aed285bc2ee0577b80bd1343ccc52ebc5e631dd28",
}

_CITATION = """@inproceedings{anastasopoulos-etal-2020-tico,
  title = {{TICO}-19: the Translation Initiative for {CO}vid-19},
  author = {Anastasopoulos, Antonios and others},
  booktitle = {Proceedings of the 1st Workshop on {NLP} for {COVID}-19 (Part 2) at {EMNLP} 2020},
  year = {2020},
  url = {https://aclanthology.org/2020.nlpcovid19-2.5},
}"""


def zip_name(lang: str) -> str:
  """Upstream file name of the TMX zip for ``lang`` (e.g. ``all.en-sw.tmx.zip``)."""
  return f"all.en-{lang}.tmx.zip"


def fetch_pinned(
  dl_manager: tfds.download.DownloadManager,
  rel: str,
  url: str,
  sha256: str,
  pinned: str = "the pinned upstream file",
) -> pathlib.Path:
  """``manual_dir/rel`` when it exists (a warning when its sha256 is not ``pinned``'s: read
  anyway), else ``url`` downloaded and checked against ``sha256`` (a mismatch raises)."""
  try:
    manual_dir = dl_manager.manual_dir
  except AssertionError:  # tfds raises this when manual_dir is unset and not required
    manual_dir = None
  if manual_dir is not None and (pathlib.Path(manual_dir) / rel).is_file():
    path = pathlib.Path(manual_dir) / rel
    if sha256_file(path) != sha256:
      logger.warning("%s: sha256 differs from %s; reading it anyway", path, pinned)
    return path
  logger.info("no %s in the manual dir %s; downloading %s", rel, manual_dir, url)
  path = pathlib.Path(dl_manager.download(url))
  got = sha256_file(path)
  if got != sha256:
    raise ValueError(f"{path}: sha256 {got} of {url}; expected {sha256}")
  return path


class Tico19Config(tfds.core.BuilderConfig):
  """One language paired with English."""

  def __init__(self, *, lang: str, **kwargs):
    super().__init__(name=lang, description=f"TICO-19 English-{lang} segment pairs.", **kwargs)
    self.lang = lang


class Tico19(tfds.core.GeneratorBasedBuilder):
  """TICO-19 English/foreign segment pairs with document ids, one config per language."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": f"TMX zips from upstream commit {UPSTREAM_COMMIT[:12]}."}
  BUILDER_CONFIGS = [Tico19Config(lang=lang) for lang in LANGUAGES]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Optional. Put the upstream TMX zips (`all.en-sw.tmx.zip`, `all.en-es-LA.tmx.zip`,
  ...; from https://github.com/tico-19/tico-19.github.io, folder `data/TM/`) in one
  folder and pass it as `download_config=tfds.download.DownloadConfig(manual_dir=...)`
  (`optical_jax.testsets.tfds_tico19.prepare(lang, data_dir, manual_dir)` does this), or
  as `--manual_dir` to the `tfds build` CLI (needs TensorFlow); on this team's
  machines that folder is `../shared/data/tico19/original_zips`. Without it the zip
  is downloaded from GitHub.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=(
        "TICO-19 COVID-19 translation benchmark: English segments and their "
        "professional translations, with the source document id."
      ),
      features=tfds.features.FeaturesDict(
        {
          "english": tfds.features.Text(),
          "foreign": tfds.features.Text(),
          "doc_id": tfds.features.Text(),
        }
      ),
      supervised_keys=("foreign", "english"),
      homepage="https://tico-19.github.io/",
      citation=_CITATION,
      license="CC0-1.0",
      # Keep upstream order (documents contiguous, segments in order); shuffle when training.
      disable_shuffling=True,
    )

  def _zip_path(self, dl_manager: tfds.download.DownloadManager) -> pathlib.Path:
    """The manual-dir zip when there is one, else the verified download."""
    lang = self.builder_config.lang
    return fetch_pinned(
      dl_manager,
      zip_name(lang),
      _URL.format(lang=lang),
      SHA256[lang],
      f"upstream commit {UPSTREAM_COMMIT[:12]}",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    return {"train": self._generate_examples(self._zip_path(dl_manager))}

  def _generate_examples(self, path: pathlib.Path):
    data = bitext.read_tmx(path, self.builder_config.lang)
    for pair in data:
      yield pair.source, {"english": pair.english, "foreign": pair.foreign, "doc_id": pair.doc_id}


def prepare(
  lang: str, data_dir: Union[str, os.PathLike], manual_dir: Optional[Union[str, os.PathLike]] = None
) -> Tico19:
  """Builds config ``lang`` into ``data_dir`` as ``array_record`` (no TensorFlow).

  Args:
    lang: one of :data:`LANGUAGES`.
    data_dir: the TFDS data dir; the result lands in ``data_dir/tico19/<lang>/1.0.0``.
    manual_dir: a folder holding ``all.en-<lang>.tmx.zip``; without it (or the
      zip in it) the zip is downloaded.

  Returns:
    The prepared builder; read it with
    ``tfds.data_source(f"tico19/{lang}", data_dir=data_dir)["train"]``.
  """
  builder = Tico19(config=lang, data_dir=str(data_dir))
  download_config = tfds.download.DownloadConfig(
    manual_dir=None if manual_dir is None else str(manual_dir)
  )
  builder.download_and_prepare(file_format="array_record", download_config=download_config)
  return builder
