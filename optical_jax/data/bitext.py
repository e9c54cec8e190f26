"""Bitext readers (TSV, LASER Tatoeba, TMX / TICO-19, NTREX-128) and splits.

One API for every reader:

* Each reader returns a :class:`BitextData`: ``pairs`` (a list of
  :class:`BitextPair`, in file order), ``skipped`` (how many records were
  dropped, always 0 unless ``skip_invalid=True``) and ``path`` (what was read).
  ``BitextData`` also acts as the list itself (``len``, iteration, indexing).
* A :class:`BitextPair` always holds the English side first
  (``english``, ``foreign``), whatever the order in the file, plus ``doc_id``
  (the document it comes from, ``''`` where the source has none) and
  ``source`` (``<file name>:<line>`` for line-based files, the ``tuid`` for
  TMX), which is what error messages and logs point at.
* Both sides are stripped of surrounding whitespace (line ends ``\\n`` or
  ``\\r\\n`` are removed; a UTF-8 byte-order mark at the start of a file is
  dropped). Lines are split on ``\\n`` only, never on other Unicode line
  separators, so line numbers agree with ``wc -l`` and ``sed -n Np``.

Malformed input raises, naming the file, the line (or tuid) and what was expected:

* ``FileNotFoundError`` for a missing file (its path in the message);
* ``ValueError`` for a TSV line without exactly two tab-separated fields,
  undecodable UTF-8 bytes, parallel files with different line counts, a TMX
  unit without exactly one variant in each language, malformed XML, and empty
  text on either side.

With ``skip_invalid=True`` the per-record problems (wrong field count,
undecodable line, empty side, TMX unit missing a language) skip that record
instead; the count is logged (``logging`` WARNING, one DEBUG line per record)
and returned in ``BitextData.skipped``. Whole-file problems (missing file,
different line counts, malformed XML, a zip without exactly one TMX) always
raise.

Splits (:func:`split_by_document`, :func:`split_by_pair`) are deterministic for
a given seed and return both sides in input order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import xml.etree.ElementTree as ET
import zipfile
from typing import IO, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from optical_jax.io import existing_file, iter_lines, utf8_message

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: TMX inline elements whose content is markup of the original format, not text.
_TMX_CODE_TAGS = frozenset({"bpt", "ept", "it", "ph", "ut"})


@dataclasses.dataclass(frozen=True)
class BitextPair:
  """One translation pair; English first whatever the file order."""

  english: str
  foreign: str
  doc_id: str = ""  # document id; '' where the source has none
  source: str = ""  # '<file>:<line>' or the TMX tuid


@dataclasses.dataclass
class BitextData:
  """What a reader returns: the pairs (a list, in file order), how many
  records ``skip_invalid=True`` dropped, and the path read (for a pair of
  parallel files, the foreign one)."""

  pairs: List[BitextPair]
  skipped: int
  path: str

  def __len__(self) -> int:
    return len(self.pairs)

  def __iter__(self) -> Iterator[BitextPair]:
    return iter(self.pairs)

  def __getitem__(self, i):
    return self.pairs[i]


class _Skipper:
  """Raises ``ValueError(message)`` or, with ``skip_invalid``, counts it."""

  def __init__(self, skip_invalid: bool):
    self.skip_invalid = skip_invalid
    self.count = 0

  def __call__(self, message: str) -> None:
    if not self.skip_invalid:
      raise ValueError(message)
    self.count += 1
    logger.debug("skipped: %s", message)

  def result(self, pairs: List[BitextPair], path: PathLike) -> BitextData:
    if self.count:
      logger.warning("%s: skipped %d invalid records (skip_invalid=True)", path, self.count)
    return BitextData(pairs, self.count, str(path))


def _pair(
  english: str, foreign: str, where: str, doc_id: str, source: str, skip: _Skipper
) -> Optional[BitextPair]:
  """A stripped pair, or None (after ``skip``) when a side is empty."""
  english, foreign = english.strip(), foreign.strip()
  for side, text in (("English", english), ("foreign", foreign)):
    if not text:
      skip(f"{where}: empty {side} text; expected a non-empty segment on both sides")
      return None
  return BitextPair(english, foreign, doc_id, source)


def read_tsv(path: PathLike, english_column: int = 0, skip_invalid: bool = False) -> BitextData:
  """Two tab-separated UTF-8 columns per line, one pair per line.

  Args:
    path: the ``.tsv`` file.
    english_column: 0 if English is the first column, 1 if the second.
    skip_invalid: skip (and count) bad lines instead of raising.

  Returns:
    :class:`BitextData`; ``doc_id`` is ``''``, ``source`` is ``<name>:<line>``.
  """
  if english_column not in (0, 1):
    raise ValueError(f"english_column must be 0 or 1, got {english_column!r}")
  path = existing_file(path)
  skip, pairs = _Skipper(skip_invalid), []
  for lineno, line in iter_lines(path, errors="yield"):
    if isinstance(line, UnicodeDecodeError):
      skip(f"{path}:{lineno}: {utf8_message(line)}")
      continue
    fields = line.split("\t")
    if len(fields) != 2:
      skip(f"{path}:{lineno}: expected 2 tab-separated fields, got {len(fields)}")
      continue
    english, foreign = fields[english_column], fields[1 - english_column]
    pair = _pair(english, foreign, f"{path}:{lineno}", "", f"{path.name}:{lineno}", skip)
    if pair:
      pairs.append(pair)
  return skip.result(pairs, path)


def _read_parallel(
  english_path: pathlib.Path,
  foreign_path: pathlib.Path,
  doc_ids: Optional[Sequence[str]],
  doc_path: Optional[pathlib.Path],
  skip_invalid: bool,
) -> BitextData:
  """Line-aligned English/foreign files (and optionally a line-aligned doc id list)."""
  english, foreign = (
    [line for _, line in iter_lines(x, errors="yield")] for x in (english_path, foreign_path)
  )
  if len(english) != len(foreign):
    short, long_ = (
      (english_path, foreign_path) if len(english) < len(foreign) else (foreign_path, english_path)
    )
    n = min(len(english), len(foreign))
    raise ValueError(
      f"{long_}:{n + 1}: line {n + 1} has no counterpart in {short} ({n} lines); "
      f"expected line-aligned files with equal line counts ({long_} has "
      f"{max(len(english), len(foreign))})"
    )
  if doc_ids is not None and len(doc_ids) != len(english):
    raise ValueError(
      f"{doc_path}: has {len(doc_ids)} lines but {english_path} has "
      f"{len(english)}; expected one document id per line"
    )
  skip, pairs = _Skipper(skip_invalid), []
  for i, (e, f) in enumerate(zip(english, foreign)):
    lineno = i + 1
    bad = [
      (p, x) for p, x in ((english_path, e), (foreign_path, f)) if isinstance(x, UnicodeDecodeError)
    ]
    if bad:
      skip(f"{bad[0][0]}:{lineno}: {utf8_message(bad[0][1])}")
      continue
    doc_id = doc_ids[i] if doc_ids is not None else ""
    where = f"{foreign_path}:{lineno} (English {english_path}:{lineno})"
    pair = _pair(e, f, where, doc_id, f"{foreign_path.name}:{lineno}", skip)
    if pair:
      pairs.append(pair)
  return skip.result(pairs, foreign_path)


def read_tatoeba(directory: PathLike, lang: str, skip_invalid: bool = False) -> BitextData:
  """LASER Tatoeba test files ``tatoeba.{lang}-eng.{lang}`` / ``.eng``.

  Args:
    directory: the folder holding them (e.g. ``shared/data/tatoeba/v1``).
    lang: the three-letter LASER code (``swh``, ``tgl``, ``mar``, ``deu``...).
    skip_invalid: skip (and count) bad lines instead of raising.

  Returns:
    :class:`BitextData`; ``doc_id`` is ``''``, ``source`` is
    ``tatoeba.{lang}-eng.{lang}:<line>``.
  """
  directory = pathlib.Path(directory)
  foreign = existing_file(directory / f"tatoeba.{lang}-eng.{lang}")
  english = existing_file(directory / f"tatoeba.{lang}-eng.eng")
  return _read_parallel(english, foreign, None, None, skip_invalid)


def read_ntrex(directory: PathLike, lang: str, skip_invalid: bool = False) -> BitextData:
  """NTREX-128: ``newstest2019-ref.{lang}.txt`` against ``newstest2019-src.eng.txt``.

  Args:
    directory: the NTREX root, holding ``DOCUMENT_IDS.tsv`` and ``NTREX-128/``
      (a language missing there is looked up in ``NTREX-additional/``).
    lang: the NTREX code (``swa``, ``som``, ``yor``, ``hau``, ``fil``, ``mar``,
      ``deu``, ``zho-CN``...; see ``LANGUAGES.tsv``).
    skip_invalid: skip (and count) bad lines instead of raising.

  Returns:
    :class:`BitextData`; ``doc_id`` from ``DOCUMENT_IDS.tsv`` (e.g.
    ``bbc.381790``), ``source`` is ``newstest2019-ref.{lang}.txt:<line>``.
  """
  directory = pathlib.Path(directory)
  name = f"newstest2019-ref.{lang}.txt"
  foreign = directory / "NTREX-128" / name
  if not foreign.is_file() and (directory / "NTREX-additional" / name).is_file():
    foreign = directory / "NTREX-additional" / name
  foreign = existing_file(foreign)
  english = existing_file(directory / "NTREX-128" / "newstest2019-src.eng.txt")
  doc_path = existing_file(directory / "DOCUMENT_IDS.tsv")
  doc_ids = []
  for lineno, line in iter_lines(doc_path, errors="yield"):
    if isinstance(line, UnicodeDecodeError):
      raise ValueError(f"{doc_path}:{lineno}: {utf8_message(line)}")
    doc_id = line.split("\t")[0].strip()
    if not doc_id:
      raise ValueError(f"{doc_path}:{lineno}: empty document id; expected one id per line")
    doc_ids.append(doc_id)
  return _read_parallel(english, foreign, doc_ids, doc_path, skip_invalid)


def _lang_matches(tag: str, wanted: str, exact: bool) -> bool:
  """BCP-47 match, case-insensitive; ``exact=False`` compares primary subtags."""
  tag, wanted = tag.lower().replace("_", "-"), wanted.lower().replace("_", "-")
  return tag == wanted if exact else tag.split("-")[0] == wanted.split("-")[0]


def _local(tag: str) -> str:
  return tag.rsplit("}", 1)[-1]


def _seg_text(seg: ET.Element) -> str:
  """Text of a TMX ``<seg>``: inline codes (bpt/ept/it/ph/ut, and any ``<sub>``
  inside them) dropped, ``<hi>`` text kept."""
  parts = [seg.text or ""]
  for child in seg:
    if _local(child.tag) not in _TMX_CODE_TAGS:
      parts.append(_seg_text(child))
    parts.append(child.tail or "")
  return "".join(parts)


def _pick_variant(
  variants: List[Tuple[str, str]], lang: str, where: str, skip: _Skipper
) -> Optional[str]:
  """The text of the one variant in ``lang``: exact tag first, then by primary subtag."""
  for exact in (True, False):
    found = [text for tag, text in variants if _lang_matches(tag, lang, exact)]
    if len(found) > 1:
      skip(f"{where}: {len(found)} variants match xml:lang {lang!r}; expected exactly one")
      return None
    if found:
      return found[0]
  skip(
    f"{where}: no variant in xml:lang {lang!r} (found {[t for t, _ in variants]}); "
    "expected one in each language"
  )
  return None


@contextlib.contextmanager
def _open_tmx(path: pathlib.Path) -> Iterator[Tuple[IO[bytes], str]]:
  """(binary file object, display name) for a ``.tmx`` or a ``.zip`` holding one."""
  with contextlib.ExitStack() as stack:
    if zipfile.is_zipfile(path):
      zf = stack.enter_context(zipfile.ZipFile(path))
      members = [
        m for m in zf.namelist() if m.lower().endswith(".tmx") and not m.startswith("__MACOSX/")
      ]
      if len(members) != 1:
        raise ValueError(f"{path}: holds {len(members)} .tmx files {members}; expected exactly one")
      yield stack.enter_context(zf.open(members[0])), f"{path}[{members[0]}]"
    else:
      yield stack.enter_context(open(path, "rb")), str(path)


def read_tmx(
  path: PathLike, lang: str, english: str = "en", skip_invalid: bool = False
) -> BitextData:
  """A TMX translation memory (or a ``.zip`` holding one, as TICO-19 ships
  them), streamed with ``iterparse``.

  Args:
    path: ``.tmx`` file or ``.zip`` with exactly one ``.tmx`` member.
    lang: the foreign language tag (``sw``, ``es-LA``, ``pt-BR``...). A
      ``<tuv>``'s ``xml:lang`` (or TMX 1.1 ``lang``) matches case-insensitively;
      an exact tag wins, otherwise the primary subtag decides (``es`` matches
      ``es-LA``), and two candidates at the same level are an error.
    english: the English tag, matched the same way (``lang`` may not share
      its primary subtag).
    skip_invalid: skip (and count) units missing a language or with an empty
      segment instead of raising.

  Returns:
    :class:`BitextData`; ``doc_id`` is the part of ``tuid="DOC:index"`` before
    the last colon (``''`` without a colon), ``source`` is the tuid (or
    ``tu#<n>`` for a unit without one).
  """
  if _lang_matches(lang, english, exact=False):
    raise ValueError(f"lang {lang!r} and english {english!r} share a primary subtag")
  path = existing_file(path)
  skip, pairs = _Skipper(skip_invalid), []
  body, n = None, 0
  with _open_tmx(path) as (f, name):
    try:
      for event, elem in ET.iterparse(f, events=("start", "end")):
        tag = _local(elem.tag)
        if event == "start":
          if tag == "body":
            body = elem
          continue
        if tag != "tu":
          continue
        n += 1
        tuid = elem.get("tuid")
        source = tuid if tuid is not None else f"tu#{n}"
        where = f"{name}: tu tuid={tuid!r}" if tuid is not None else f"{name}: tu #{n} (no tuid)"
        variants = []
        for tuv in elem:
          if _local(tuv.tag) != "tuv":
            continue
          seg = next((c for c in tuv if _local(c.tag) == "seg"), None)
          lang_tag = tuv.get(_XML_LANG) or tuv.get("lang") or ""
          variants.append((lang_tag, "" if seg is None else _seg_text(seg)))
        en_text = _pick_variant(variants, english, where, skip)
        f_text = None if en_text is None else _pick_variant(variants, lang, where, skip)
        if f_text is not None:
          doc_id = tuid.rsplit(":", 1)[0] if tuid and ":" in tuid else ""
          pair = _pair(en_text, f_text, where, doc_id, source, skip)
          if pair:
            pairs.append(pair)
        elem.clear()
        if body is not None:
          body.remove(elem)  # keep memory flat: the tree never grows past one unit
    except ET.ParseError as e:
      raise ValueError(f"{name}: malformed XML ({e}); expected a well-formed TMX document") from e
  return skip.result(pairs, path)


def _units(pairs: Sequence[BitextPair]) -> List[List[int]]:
  """Indices grouped by document, in first-appearance order; no doc id: one unit per pair."""
  groups, order = {}, []
  for i, p in enumerate(pairs):
    key = ("doc", p.doc_id) if p.doc_id else ("pair", i)
    if key not in groups:
      groups[key] = []
      order.append(key)
    groups[key].append(i)
  return [groups[k] for k in order]


def _partition(pairs: List[BitextPair], in_test: np.ndarray):
  """(train, test) in input order; ``in_test``: bool [len(pairs)]."""
  return [p for p, t in zip(pairs, in_test) if not t], [p for p, t in zip(pairs, in_test) if t]


def _check_fraction(test_fraction: float) -> None:
  if not 0.0 <= test_fraction <= 1.0:
    raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction!r}")


def split_by_document(
  pairs: Sequence[BitextPair], test_fraction: float, seed: int = 0
) -> Tuple[List[BitextPair], List[BitextPair]]:
  """Deterministic (train, test) split with no document on both sides.

  Documents (and pairs with an empty ``doc_id``, each on its own) are visited in
  a seeded random order; each goes to test when that brings the test size closer
  to ``round(test_fraction * len(pairs))``, otherwise to train. With uneven
  documents the test size is therefore approximate.

  Args:
    pairs: a list of :class:`BitextPair` or a :class:`BitextData`.
    test_fraction: wanted share of pairs in test, in [0, 1].
    seed: the shuffle seed.

  Returns:
    (train, test), lists of pairs, each in input order.
  """
  _check_fraction(test_fraction)
  pairs = list(pairs)
  units = _units(pairs)
  target = round(test_fraction * len(pairs))
  in_test = np.zeros(len(pairs), bool)
  size = 0
  for u in np.random.default_rng(seed).permutation(len(units)):
    unit = units[u]
    if abs(size + len(unit) - target) < abs(size - target):
      in_test[unit] = True
      size += len(unit)
  return _partition(pairs, in_test)


def split_by_pair(
  pairs: Sequence[BitextPair], test_fraction: float, seed: int = 0
) -> Tuple[List[BitextPair], List[BitextPair]]:
  """Deterministic (train, test) split of single pairs, ignoring documents:
  exactly ``round(test_fraction * len(pairs))`` pairs go to test.

  Returns:
    (train, test), lists of pairs, each in input order.
  """
  _check_fraction(test_fraction)
  pairs = list(pairs)
  n_test = round(test_fraction * len(pairs))
  in_test = np.zeros(len(pairs), bool)
  in_test[np.random.default_rng(seed).permutation(len(pairs))[:n_test]] = True
  return _partition(pairs, in_test)
