"""NTREX-128 and TICO-19 retrieval collections as tensorflow-datasets builders (no TensorFlow).

The same known-item collections as :mod:`optical_jax.testsets.builders`, one
builder per source and one config per query language (named by its query file
name, :data:`~optical_jax.testsets.builders.NTREX_QUERY_LANG` /
:data:`~optical_jax.testsets.builders.TICO_QUERY_LANG`):

* ``ntrex_clir/<lang>``: English NTREX documents (title = headline), queries
  the ``<lang>`` headlines (``direction="foreign_query"``, with titles).
* ``tico19_clir/<lang>``: English TICO-19 passages (window 5, stride 5, from
  the ``fr`` pair's English side), queries the ``<lang>`` segments.

Two splits share one feature set: ``documents`` (``id``, ``title``, ``text``;
``relevant`` and ``relevance`` empty) and ``queries`` (``id`` = qid, ``text`` =
query, ``relevant`` = relevant doc ids, ``relevance`` = their grades). Written
as ``array_record`` and read with ``tfds.data_source``::

  from optical_jax.testsets import tfds_collections
  tfds_collections.prepare("ntrex_clir", "swa", DATA_DIR, manual_dir="../shared/data/ntrex128")
  docs = tfds.data_source("ntrex_clir/swa", data_dir=DATA_DIR)["documents"]

Downloads (without a manual dir holding the files) come from the upstream
repositories at pinned commits and are checked against sha256 sums; files in a
manual dir are read with a warning when their sum differs. As with
:mod:`optical_jax.testsets.tfds_tico19`, use :func:`prepare` rather than the
``tfds build`` CLI, which needs TensorFlow.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from typing import Dict, Optional, Union

import numpy as np
import tensorflow_datasets as tfds

from optical_jax.testsets import builders, tfds_tico19
from optical_jax.testsets.collection_format import Collection

logger = logging.getLogger(__name__)

_NTREX_URL = (
  f"https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/{builders.NTREX_COMMIT}/{{path}}"
)
_TICO_URL = (
  f"https://raw.githubusercontent.com/tico-19/tico-19.github.io/"
  f"{tfds_tico19.UPSTREAM_COMMIT}/data/TM/{{name}}"
)

#: sha256 at :data:`builders.NTREX_COMMIT` (as ../shared/data/ntrex128/SHA256SUMS).
NTREX_SHA256 = {
  "DOCUMENT_IDS.tsv": "88a8b0ff1eae47e83f60dcde01075b8c87d75ced59ca09e0af1eb539958e05d5",
  "NTREX-128/newstest2019-src.eng.txt": "389e8f5796c66db4f646dfad33e1ec622d74767af5ef112b42a1f2cd814df3cc",
  **{
    f"NTREX-128/newstest2019-ref.{code}.txt": digest
    for code, digest in {
      "amh": "9383b4681e1fc24c285af145f0d70a76997763df9aa366623c458ea2bcc19823",
      "arb": "d271c8645933421f760eba8ed8cc1ceaaa052f917d9c2839b8abb27e0ded71e6",
      "ben": "7fae73a2d1d24fdcb47f68a0691253cda05fa55c5ca944bc3cdf8eb2945825f1",
      "deu": "259d7406a07b63e6b5b9c4a22fb76b85e2578a3fa0a4e541a50f4f7348e5c1b2",
      "fas": "17bca2217c74accf95fbdc47b7743402a05abc0d892ae6053477c7aec4a767c1",
      "fil": "a87a71b901d91b00c8c4df1fdd949c3480d620193e6e1c8215fad63764e8c35b",
      "fra": "1dd80d337f6a75c6ed579a95f09ca9b85d87d6e488d0a428c5f89cca99553136",
      "hau": "e6665dd99bf833d328928cf8a5522613833dc64c4df78851071faa1bad736b36",
      "hin": "10d612b3960dc1f90d297aff7e3c6d39e6eb7221b912cef0c053d9f510e41bbc",
      "ibo": "e6374641c40a31b9954171accc4c47c70c76fd9ab64bde8d299d6086c8a7c01e",
      "ind": "a28ea049cc73a7042bbea75abd6ed02a24362d3cf8d1a1cc519a7efd8bf5ceb5",
      "jpn": "4debd275d04414b71c95bad5f68e7275174e32a4ed33ece1b9a43a227aea2fca",
      "kin": "c3bed9c60e97bf9cdcc2ddff3e4a36070fbc0274a0750af3c04f461f5ef7bf39",
      "mar": "a72aaecd670f18b045bb3704c41277faea665ecaaf8af6932a8c3ea51ae5ac7b",
      "nep": "c4c2187654fa93a71624d6ae5ef912274a703be2ad47eb715c354e1001b1b8f7",
      "nso": "63ba7ad4dcc55c4cec41817a5596baf3b9b0ca0ff8da311b3089066f6907fb31",
      "orm": "8b0dc2e4589ca4f87f22534606bb64c4dbc183e05ea2a260846fabe749ca570a",
      "por": "ad2b8c2d91be6a17f9c0df0dd25e358b8de6168212b4bbc9718ea41c4df9ecd8",
      "rus": "a7e3601298b0368659a5c006c52809cf6792e02eb94bde9b9693333278d85732",
      "som": "2d13c10e31abc537f66c92d5c5f6fac17348d30d3fe119dc7c11bd6d6ce63240",
      "spa": "0ad8129e5ce0bea86ba7e0ea0db0504d6626b8a4d2a7cf4c44b7791c70e99b84",
      "swa": "076cec7296ec0d458d4762ddcffcd1d79ce2e7d8ee641467977d0b9f4ec95e8d",
      "tir": "3babe69f9e1081db0a1fdb3d9334bcf62d9a8bb586b387f263a44d7c3ac26a7f",
      "tur": "bd0c3978cb7d283ee5f8834d90a32fe2ffd0c71e4b133c677cff259d07a70ea9",
      "urd": "e069058861f5f285c159dbdcf9c40a75fcf897ab4191ca3fadbdd815048f5abe",
      "vie": "dd5d16cf246da57f5ccb7490ae13b8df428e7cb53e17fa04552406d657abfe3c",
      "xho": "73fedcac7ccbbc1838d775f2718028cb4bab0972c1b4674dd861a53776fa5d20",
      "yor": "949526fa834746b6bf85e5014ccaae993b94d4d9ac1452350eb715e30ecd62f2",
      "zho-CN": "8bcd6f0868d33f26c8da12f55a82f66088a7b60a5f7b0b1a99dcec51daa8054a",
      "zul": "498c1d15998c7e418feba7362f23f6c763687013bf59ed45ef3fe8b3a53e258d",
    }.items()
  },
}
NTREX_LANGUAGES = tuple(
  p[len("NTREX-128/newstest2019-ref.") : -len(".txt")] for p in NTREX_SHA256 if "-ref." in p
)


class CollectionConfig(tfds.core.BuilderConfig):
  """One query language; ``code`` is the source's own code (``zho-CN``, ``es-LA``...)."""

  def __init__(self, *, code: str, name: str, source: str, **kwargs):
    super().__init__(
      name=name, description=f"{source} known-item collection, {code} queries.", **kwargs
    )
    self.code = code


class _CollectionBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared by both builders: splits from a :class:`Collection` built in memory."""

  VERSION = tfds.core.Version("1.0.0")

  def _collection(self, dl_manager) -> Collection:
    raise NotImplementedError

  def _dataset_info(self, description: str, homepage: str, license_: str) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=description,
      features=tfds.features.FeaturesDict(
        {
          "id": tfds.features.Text(),
          "title": tfds.features.Text(),
          "text": tfds.features.Text(),
          "relevant": tfds.features.Sequence(tfds.features.Text()),
          "relevance": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
        }
      ),
      homepage=homepage,
      license=license_,
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    coll = self._collection(dl_manager)
    return {split: self._generate_examples(coll, split) for split in ("documents", "queries")}

  def _generate_examples(self, coll: Collection, split: str):
    if split == "documents":
      for doc_id in coll.doc_ids:
        title = coll.titles.get(doc_id, "")
        text = coll.docs[doc_id][len(title) + 1 :] if title else coll.docs[doc_id]
        yield doc_id, {"id": doc_id, "title": title, "text": text, "relevant": [], "relevance": []}
      return
    (queries,) = coll.queries.values()
    for qid, text in queries.items():
      judged = coll.qrels.get(qid, {})
      yield (
        qid,
        {
          "id": qid,
          "title": "",
          "text": text,
          "relevant": list(judged),
          "relevance": list(judged.values()),
        },
      )


class NtrexClir(_CollectionBuilder):
  """NTREX-128 headline -> English document known-item test, one config per query language."""

  RELEASE_NOTES = {"1.0.0": f"NTREX commit {builders.NTREX_COMMIT[:12]}."}
  BUILDER_CONFIGS = [
    CollectionConfig(code=c, name=builders.NTREX_QUERY_LANG.get(c, c), source="NTREX-128")
    for c in NTREX_LANGUAGES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Optional: the NTREX root (DOCUMENT_IDS.tsv, NTREX-128/newstest2019-*.txt) of
  https://github.com/MicrosoftTranslator/NTREX; on this team's machines
  ../shared/data/ntrex128. Without it the three files are downloaded.
  """

  def _info(self):
    return self._dataset_info(
      "NTREX-128 (CC BY-SA 4.0) as a known-item test built from translations: foreign "
      "headlines as queries, the English news documents they translate as relevant.",
      "https://github.com/MicrosoftTranslator/NTREX",
      "CC-BY-SA-4.0",
    )

  def _collection(self, dl_manager) -> Collection:
    code = self.builder_config.code
    rels = [
      "DOCUMENT_IDS.tsv",
      "NTREX-128/newstest2019-src.eng.txt",
      f"NTREX-128/newstest2019-ref.{code}.txt",
    ]
    with tempfile.TemporaryDirectory() as tmp:  # read_ntrex wants the upstream layout
      (pathlib.Path(tmp) / "NTREX-128").mkdir()
      for rel in rels:
        src = tfds_tico19.fetch_pinned(
          dl_manager, rel, _NTREX_URL.format(path=rel), NTREX_SHA256[rel]
        )
        os.symlink(src.resolve(), pathlib.Path(tmp) / rel)
      return builders.ntrex_collection(tmp, [code])[""]


class Tico19Clir(_CollectionBuilder):
  """TICO-19 segment -> English passage known-item test, one config per query language."""

  RELEASE_NOTES = {"1.0.0": f"TMX zips from upstream commit {tfds_tico19.UPSTREAM_COMMIT[:12]}."}
  BUILDER_CONFIGS = [
    CollectionConfig(code=c, name=builders.TICO_QUERY_LANG.get(c, c), source="TICO-19")
    for c in tfds_tico19.LANGUAGES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = tfds_tico19.Tico19.MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self):
    return self._dataset_info(
      "TICO-19 (CC0) as a passage-level known-item test built from translations: "
      "foreign segments as queries, 5-segment English passages as documents.",
      "https://tico-19.github.io/",
      "CC0-1.0",
    )

  def _collection(self, dl_manager) -> Collection:
    paths: Dict[str, pathlib.Path] = {}
    for code in dict.fromkeys([self.builder_config.code, builders.TICO_ENGLISH_FROM]):
      name = tfds_tico19.zip_name(code)
      paths[code] = tfds_tico19.fetch_pinned(
        dl_manager, name, _TICO_URL.format(name=name), tfds_tico19.SHA256[code]
      )
    return builders.tico19_collection(
      {self.builder_config.code: paths[self.builder_config.code]},
      paths[builders.TICO_ENGLISH_FROM],
    )


def prepare(
  dataset: str,
  lang: str,
  data_dir: Union[str, os.PathLike],
  manual_dir: Optional[Union[str, os.PathLike]] = None,
) -> tfds.core.DatasetBuilder:
  """Builds ``dataset`` (``ntrex_clir`` or ``tico19_clir``) config ``lang`` into
  ``data_dir`` as ``array_record``; read it with
  ``tfds.data_source(f"{dataset}/{lang}", data_dir=data_dir)``."""
  builders = {"ntrex_clir": NtrexClir, "tico19_clir": Tico19Clir}
  if dataset not in builders:
    raise ValueError(f"dataset {dataset!r}; expected one of {sorted(builders)}")
  builder = builders[dataset](config=lang, data_dir=str(data_dir))
  builder.download_and_prepare(
    file_format="array_record",
    download_config=tfds.download.DownloadConfig(
      manual_dir=None if manual_dir is None else str(manual_dir)
    ),
  )
  return builder
