"""``irds:<id>`` test collections: an ``ir_datasets`` dataset (imported lazily) that is already
downloaded, as a :class:`~optical_jax.testsets.collection_format.Collection`; nothing is
downloaded unless ``download=True``. Opened through
:func:`optical_jax.testsets.registry.load_collection`.
"""

from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Sequence

from optical_jax.testsets.collection_format import Collection

#: The prefix of an ``ir_datasets`` id where a collection folder is expected.
PREFIX = "irds:"


class _NotDownloaded(OSError):
  """Raised in place of a network download while ``download=False``."""


@contextlib.contextmanager
def _no_downloads(attempts: List[str]):
  """Makes ir_datasets' network mirrors raise instead of downloading, recording each URL.

  Patches ``stream`` of ``RequestsDownload``, ``GoogleDriveDownload`` and
  ``GoogleCloudBucketStream`` (ir_datasets 0.5-0.6); files already in
  ``ir_datasets``' cache (``IR_DATASETS_HOME``) and local mirrors are used as usual.
  """
  from ir_datasets.util import download as dl  # pylint: disable=import-outside-toplevel

  classes = [dl.RequestsDownload, dl.GoogleDriveDownload, dl.GoogleCloudBucketStream]
  saved = [c.stream for c in classes]

  def refuse(self):
    url = getattr(self, "url", None) or getattr(self, "uri", None) or repr(self)
    attempts.append(url)
    raise _NotDownloaded(f"not downloaded: {url}")

  try:
    for c in classes:
      c.stream = refuse
    yield
  finally:
    for c, stream in zip(classes, saved):
      c.stream = stream


def load_irds(dataset_id: str, langs: Optional[Sequence[str]], download: bool) -> Collection:
  """An ``ir_datasets`` dataset as a :class:`Collection` (docs, queries, qrels).

  Query language: the dataset's ``queries_lang()``; where it has none, ``langs``
  must name exactly one language. Text: ``default_text()`` of each record, and
  a document's ``title`` field (when it has one) becomes its title.
  """
  where = f"irds:{dataset_id}"
  try:
    import ir_datasets  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"{where}: needs the ir_datasets package (pip install ir-datasets)") from e
  try:
    dataset = ir_datasets.load(dataset_id)
  except KeyError:
    raise ValueError(
      f"{where}: ir_datasets {ir_datasets.__version__} has no dataset "
      f"{dataset_id!r}; expected an id from ir_datasets' catalogue"
    ) from None
  for part in ("docs", "queries", "qrels"):
    if not getattr(dataset, f"has_{part}")():
      raise ValueError(f"{where}: the dataset has no {part}; expected docs, queries and qrels")
  lang = dataset.queries_lang()
  if lang is None:
    if langs is None or len(langs) != 1:
      raise ValueError(
        f"{where}: ir_datasets does not record the query language; pass "
        "langs=[<ISO 639 code>] naming it"
      )
    lang = langs[0]
  if langs is not None and list(langs) != [lang]:
    raise FileNotFoundError(
      f"{where}: no queries in {[x for x in langs if x != lang]}; found {[lang]}"
    )
  attempts: List[str] = []
  try:
    with contextlib.nullcontext() if download else _no_downloads(attempts):
      doc_ids, docs, titles = [], {}, {}
      for doc in dataset.docs_iter():
        title = doc.title.strip() if "title" in doc._fields else ""
        text = (doc.text if "text" in doc._fields else doc.default_text()).strip()
        doc_ids.append(doc.doc_id)
        docs[doc.doc_id] = f"{title}\n{text}" if title else text
        if title:
          titles[doc.doc_id] = title
      queries = {q.query_id: q.default_text().strip() for q in dataset.queries_iter()}
      qrels: Dict[str, Dict[str, int]] = {}
      for qrel in dataset.qrels_iter():
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
  except (OSError, RuntimeError) as e:
    if not attempts and not isinstance(e, FileNotFoundError):
      raise
    missing = attempts or [str(e)]
    raise FileNotFoundError(
      f"{where}: the dataset is not downloaded (ir_datasets home "
      f"{ir_datasets.util.home_path()}); missing {missing}. Download it where there is network "
      f"access (e.g. `ir_datasets export {dataset_id} docs > /dev/null`) and copy that folder "
      "here, or pass download=True"
    ) from e
  return Collection(
    name=where,
    doc_ids=doc_ids,
    docs=docs,
    queries={lang: queries},
    qrels=qrels,
    meta={"source": where, "ir_datasets": ir_datasets.__version__},
    titles=titles,
  )
