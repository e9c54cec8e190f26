"""AfriQA (Ogundepo et al., 2023): its files, rows and question pairs (query-style bitext).

The files (``<data root>/afriqa_dev``, CC BY 4.0) are JSON lines
``<root>/<lang>/gold_span_passages.afriqa.<lang>.en.<split>.json``; each row holds a question
written in an African language (``question_lang``), its human English translation
(``question_translated``) and the English Wikipedia passage that answers it (``title``,
``context``). Splits: ``train`` and ``dev`` for bem hau ibo kin twi zul; ``train`` only for yor.

**Upstream's test split** (``<lang>/...<lang>.en.test.json``; what ``python -m
optical_jax.commands.fetch_data afriqa`` fetches beside train and dev, swa included; this team's
``../shared/data/afriqa_dev`` has none and already lacks the 47 repeats) is never read as data:
where it is under the root, every train or dev row whose native question repeats a test question
verbatim (any language's test file, stripped) is dropped, counted (``repeats_test_question``) and
logged, so no training or dev split holds a test question. Without test files nothing changes.

The collection (documents, queries, relevance) is built by
:mod:`optical_jax.testsets.afriqa_passages`.

:func:`question_pairs` gives the (English, native) question pairs of a split: query-style bitext.
Training on a language's train questions while its dev questions are the test is allowed; the
overlap guard (``data/overlap.py``) refuses bitext that repeats any query or passage text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pathlib
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

from optical_jax.io import iter_lines

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Languages with AfriQA train/dev files here (ISO 639-3; ``twi`` is Akan/Twi).
LANGS = ("bem", "hau", "ibo", "kin", "twi", "yor", "zul")
#: Upstream's test split: never read as data; train/dev rows repeating its questions are dropped.
HELD_OUT = "test"
#: Languages whose upstream test file may be under the root (Swahili has only a test split).
HELD_OUT_LANGS = LANGS + ("swa",)
#: Which split is a language's test split in the dev collection (default ``dev``).
TEST_SPLIT = {"yor": "train"}
#: The English reference query of native query ``q`` is ``q + ENGLISH_SUFFIX`` in ``queries/en.tsv``.
ENGLISH_SUFFIX = "-en"
LICENSE = "CC BY 4.0 (AfriQA, Ogundepo et al., Findings of EMNLP 2023)"


@dataclasses.dataclass(frozen=True)
class AfriqaRow:
  """One AfriQA question; ``title``/``context`` are '' when the row has no passage."""

  lang: str
  split: str
  id: str
  native: str
  english: str
  title: str
  context: str

  @property
  def qid(self) -> str:
    return f"{self.lang}-{self.split}-{self.id}"


def afriqa_file(root: PathLike, lang: str, split: str) -> pathlib.Path:
  return pathlib.Path(root) / lang / f"gold_span_passages.afriqa.{lang}.en.{split}.json"


def splits_of(root: PathLike, lang: str) -> List[str]:
  """The splits that exist on disk for ``lang`` (``train``, ``dev``)."""
  return [s for s in ("train", "dev") if afriqa_file(root, lang, s).is_file()]


def _text(value) -> Optional[str]:
  """A stripped non-empty string, or None (null, NaN, numbers, empty)."""
  if not isinstance(value, str):
    return None
  value = value.strip()
  return value or None


def read_afriqa(root: PathLike, lang: str, split: str) -> Tuple[List[AfriqaRow], Dict[str, int]]:
  """Rows of one file (file order), and counts of what was skipped.

  Returns ``(rows, skipped)``: ``rows`` are the rows with both questions as strings;
  ``skipped["question_not_a_string"]`` counts the others, ``skipped["repeats_test_question"]``
  the rows dropped because their native question is one of upstream's test questions (0 when no
  test file is under ``root``; module docstring). Rows without a passage are kept with
  ``context == ''`` (``testsets/afriqa_passages.py`` does not make them queries).
  Raises ``FileNotFoundError`` naming the file, ``ValueError`` naming file and line for bad JSON.
  """
  path = afriqa_file(root, lang, split)
  if not path.is_file():
    have = splits_of(root, lang) if (pathlib.Path(root) / lang).is_dir() else []
    raise FileNotFoundError(
      f"{path}: no AfriQA {split} file for {lang!r} (splits on disk: "
      f"{have or 'none'}; expected the layout of ../shared/data/afriqa_dev, which "
      "`python -m optical_jax.commands.fetch_data afriqa --root DIR` writes as DIR/afriqa_dev)"
    )
  rows, skipped = _parse(path, lang, split)
  skipped["repeats_test_question"] = 0
  held_out = held_out_questions(root) if split != HELD_OUT else frozenset()
  if held_out:
    kept = [r for r in rows if r.native not in held_out]
    skipped["repeats_test_question"] = len(rows) - len(kept)
    if len(kept) < len(rows):
      log.info(
        "%s: dropped %d rows whose question repeats an AfriQA test question (e.g. %r)",
        path,
        len(rows) - len(kept),
        next(r.native for r in rows if r.native in held_out),
      )
    rows = kept
  return rows, skipped


def held_out_files(root: PathLike) -> List[pathlib.Path]:
  """Upstream's test files under ``root`` (none in this team's ``../shared/data/afriqa_dev``)."""
  paths = (afriqa_file(root, lang, HELD_OUT) for lang in HELD_OUT_LANGS)
  return [p for p in paths if p.is_file()]


def held_out_questions(root: PathLike) -> FrozenSet[str]:
  """The native questions (stripped) of every test file under ``root``; empty without any."""
  out = set()
  for path in held_out_files(root):
    st = path.stat()
    out |= _questions_of(str(path.resolve()), st.st_mtime_ns, st.st_size)
  return frozenset(out)


@functools.lru_cache(maxsize=32)
def _questions_of(path: str, mtime_ns: int, size: int) -> FrozenSet[str]:
  """The native questions of one file (cached while its mtime and size stay the same)."""
  del mtime_ns, size  # the cache key only
  lang = pathlib.Path(path).parent.name
  return frozenset(r.native for r in _parse(pathlib.Path(path), lang, HELD_OUT)[0])


def _parse(path: pathlib.Path, lang: str, split: str) -> Tuple[List[AfriqaRow], Dict[str, int]]:
  """Rows of one existing file, and ``{"question_not_a_string": n}`` (:func:`read_afriqa`)."""
  rows, skipped, seen = [], {"question_not_a_string": 0}, set()
  for lineno, line in iter_lines(path):
    if not line.strip():
      continue
    try:
      r = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    native, english = _text(r.get("question_lang")), _text(r.get("question_translated"))
    if native is None or english is None:
      skipped["question_not_a_string"] += 1
      log.warning(
        "%s:%d: question is not a string (%r / %r); skipped",
        path,
        lineno,
        r.get("question_lang"),
        r.get("question_translated"),
      )
      continue
    rid = str(r.get("id", lineno - 1))
    if rid in seen:
      raise ValueError(f"{path}:{lineno}: duplicate id {rid!r}")
    seen.add(rid)
    rows.append(
      AfriqaRow(
        lang,
        split,
        rid,
        native,
        english,
        _text(r.get("title")) or "",
        _text(r.get("context")) or "",
      )
    )
  return rows, skipped


def test_split(lang: str) -> str:
  return TEST_SPLIT.get(lang, "dev")


def question_pairs(
  root: PathLike, langs: Sequence[str], split: str = "train"
) -> Dict[str, List[Tuple[str, str]]]:
  """lang -> [(English question, native question)] of ``split``, for languages that have it.

  Refuses a language whose ``split`` is its test split in the collection (Yoruba's train)."""
  out = {}
  for lang in langs:
    if split == test_split(lang):
      raise ValueError(
        f"AfriQA {lang} {split} is the test split of the AfriQA collection; it cannot be bitext"
      )
    rows, _ = read_afriqa(root, lang, split)
    out[lang] = [(r.english, r.native) for r in rows]
  return out
