"""The overlap guard: bitext must not repeat the text of an evaluation collection.

Training a student on a sentence that is also a query (or part of a document) of a retrieval
collection it is later evaluated on inflates the result, and no metric shows it. So before any
split or sampling, :func:`check_overlap` compares both sides of every bitext pair against every
query (all languages, including the English reference queries) and every document of each
collection:

* **whole text:** the side equals a query or a document after :func:`normalize` (NFKC,
  casefold, whitespace collapsed; the normaliser deduplication uses) or after :func:`words`
  (the same, with punctuation and symbols ignored, so ``"Who is Davido?"`` and ``who is
  davido`` match);
* **inside a document:** a side of at least :data:`MIN_SUBSTRING_WORDS` words occurs as a run of
  consecutive words of a document (word-level substring after :func:`words`). This covers the
  sentence-index approach (a bitext sentence copied from a passage) and also clauses that do not
  start at a sentence boundary. It is fast: the first 8 words of every bitext side go into a
  dict, each document's 8-word windows are looked up in it, and only hits are compared in full
  (50k pairs against 3k passages of 300k words: about a second).

``collections`` are ``Collection`` objects (``testsets/collection_format.py``); the names that
configs give (``config.data.overlap_collections``: folders, ``irds:`` ids, ``afriqa``) are
resolved by :func:`optical_jax.testsets.registry.guard_collection` before they get here.
Modes: ``error`` (default) raises one line naming source, language, collection, count and an
example; ``drop`` removes the overlapping pairs; ``allow`` keeps them. Every mode returns the counts, for the run's manifest.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import unicodedata
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

log = logging.getLogger(__name__)


MODES = ("error", "drop", "allow")
#: A bitext side needs this many words to be looked for inside documents.
MIN_SUBSTRING_WORDS = 8


def normalize(text: str) -> str:
  """NFKC, without U+FEFF / U+200B, casefolded, whitespace runs collapsed to one space, stripped."""
  text = unicodedata.normalize("NFKC", text).replace("\ufeff", "").replace("\u200b", "")
  return " ".join(text.casefold().split())


@functools.lru_cache(maxsize=1)
def _punctuation() -> Tuple[re.Pattern, Dict[int, str]]:
  """Every Unicode punctuation (P*) and symbol (S*) code point: a regex character class of those
  in the BMP (which ``re`` matches in constant time per character) and a translate table for the
  others (emoji and the like; a long range list would make every match slow)."""
  ranges, astral = [], {}
  for cp in range(sys.maxunicode + 1):
    if unicodedata.category(chr(cp))[0] in "PS":
      if cp > 0xFFFF:
        astral[cp] = " "
      elif ranges and ranges[-1][1] == cp - 1:
        ranges[-1][1] = cp
      else:
        ranges.append([cp, cp])
  cls = "".join(
    re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
  )
  return re.compile(f"[{cls}]+"), astral


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def words(text: str) -> List[str]:
  """:func:`normalize`, then punctuation and symbols replaced by spaces, split into words
  (combining marks stay in their word, so Devanagari or Yoruba tone marks are kept)."""
  bmp, astral = _punctuation()
  text = bmp.sub(" ", normalize(text))
  if _ASTRAL.search(text):
    text = text.translate(astral)
  return text.split()


def _sides(pair) -> Tuple[str, str]:
  """(English, foreign) of a ``BitextPair`` or an ``(english, foreign)`` tuple."""
  if hasattr(pair, "english"):
    return pair.english, pair.foreign
  return pair[0], pair[1]


def _where(pair, i: int) -> str:
  source = getattr(pair, "source", "")
  return source or f"pair #{i + 1}"


class _Index:
  """Whole-text keys (normalised text and word key -> what it is) of one collection."""

  def __init__(self, name: str, collection):
    self.name = name
    self.exact: Dict[str, str] = {}
    for lang, queries in collection.queries.items():
      for qid, text in queries.items():
        self._add(text, f"query {lang}/{qid}")
    self.doc_words: List[Tuple[str, List[str]]] = []
    for doc_id in collection.doc_ids:
      text = collection.docs[doc_id]
      w = words(text)
      self._add(text, f"document {doc_id}", w)
      self.doc_words.append((doc_id, w))

  def _add(self, text: str, label: str, w: Optional[List[str]] = None) -> None:
    w = words(text) if w is None else w
    if w:
      self.exact.setdefault(normalize(text), label)
      self.exact.setdefault(" ".join(w), label)

  def whole(self, norm: str, w: List[str]):
    """What a text (its :func:`normalize` and :func:`words`) equals in the collection, or None."""
    if not w:
      return None
    return self.exact.get(norm) or self.exact.get(" ".join(w))


def _find_inside(
  index: _Index, long_sides: Dict[Tuple[str, ...], str]
) -> Dict[Tuple[str, ...], str]:
  """Side word tuple -> the document it occurs in, for the sides of ``long_sides`` found."""
  n = MIN_SUBSTRING_WORDS
  firsts: Dict[Tuple[str, ...], List[Tuple[str, ...]]] = {}
  for side in long_sides:
    firsts.setdefault(side[:n], []).append(side)
  found = {}
  for doc_id, w in index.doc_words:
    for i in range(len(w) - n + 1):
      candidates = firsts.get(tuple(w[i : i + n]))
      if candidates:
        for side in candidates:
          if side not in found and tuple(w[i : i + len(side)]) == side:
            found[side] = doc_id
  return found


def check_overlap(
  pairs_by_source: Mapping[Hashable, Sequence],
  collections: Sequence,
  mode: str = "error",
  flag: str = "config.data.overlap",
):
  """Compares bitext with evaluation collections (module docstring).

  Args:
    pairs_by_source: ``{(source, lang): pairs}``; pairs are ``BitextPair`` or
      ``(english, foreign)`` tuples. A key that is not a 2-tuple is shown as is.
    collections: ``Collection`` objects (module docstring); each one's ``name`` is what the
      report and the messages call it.
    mode: ``error``, ``drop`` or ``allow``.
    flag: the config field named in the error message.

  Returns:
    ``(kept, report)``: ``kept`` maps each key to its pairs (the overlapping ones removed in
    ``drop`` mode, all of them otherwise, in input order); ``report`` maps each key to
    ``{"pairs", "overlapping", "removed", "collections": {name: count}, "example"}``.

  Raises:
    ValueError: in ``error`` mode when any pair overlaps, or for an unknown mode.
  """
  if mode not in MODES:
    raise ValueError(f"{flag}={mode!r}; expected one of {MODES}")
  named = [c for c in collections if isinstance(c, (str, os.PathLike))]
  if named:
    raise TypeError(
      f"check_overlap: {named} are names; resolve them with "
      "optical_jax.testsets.registry.guard_collection first"
    )
  indexes = [_Index(getattr(c, "name", "collection"), c) for c in collections]
  # Every distinct side once: its words, then where it matches.
  side_words: Dict[str, List[str]] = {}
  side_norm: Dict[str, str] = {}
  for pairs in pairs_by_source.values():
    for p in pairs:
      for text in _sides(p):
        if text not in side_words:
          side_norm[text] = normalize(text)
          side_words[text] = words(text)
  hits: List[Dict[str, str]] = []  # per collection: side text -> what it matches
  for index in indexes:
    matched = {}
    long_sides: Dict[Tuple[str, ...], str] = {}
    for text, w in side_words.items():
      label = index.whole(side_norm[text], w)
      if label:
        matched[text] = label
      elif len(w) >= MIN_SUBSTRING_WORDS:
        long_sides.setdefault(tuple(w), text)
    inside = _find_inside(index, long_sides)
    for text, w in side_words.items():
      if text not in matched and len(w) >= MIN_SUBSTRING_WORDS and tuple(w) in inside:
        matched[text] = f"inside document {inside[tuple(w)]}"
    hits.append(matched)
  kept, report = {}, {}
  for key, pairs in pairs_by_source.items():
    keep, counts, example, overlapping = [], {}, None, 0
    for i, p in enumerate(pairs):
      bad = False
      for index, matched in zip(indexes, hits):
        for side, text in zip(("English", "foreign"), _sides(p)):
          if text in matched:
            counts[index.name] = counts.get(index.name, 0) + 1
            if example is None:
              example = f"{_where(p, i)} {side} {text[:80]!r} = {index.name} {matched[text]}"
            bad = True
            break
      overlapping += bad
      if not (bad and mode == "drop"):
        keep.append(p)
    kept[key] = keep
    report[key] = {
      "pairs": len(pairs),
      "overlapping": overlapping,
      "removed": len(pairs) - len(keep),
      "collections": counts,
      "example": example,
    }
    if overlapping:
      log.warning(
        "overlap guard: %s: %d of %d pairs overlap %s (%s); mode %s",
        _name(key),
        overlapping,
        len(pairs),
        counts,
        example,
        mode,
      )
  if mode == "error":
    bad_keys = [k for k, r in report.items() if r["overlapping"]]
    if bad_keys:
      k, r = bad_keys[0], report[bad_keys[0]]
      name, count = next(iter(r["collections"].items()))
      more = f" (and {len(bad_keys) - 1} more sources overlap)" if len(bad_keys) > 1 else ""
      raise ValueError(
        f"overlap guard: {_name(k)}: {r['overlapping']} of {r['pairs']} pairs "
        f"repeat text of collection {name} ({count} pairs; e.g. {r['example']})"
        f"{more}; set {flag}=drop to remove them or {flag}=allow to keep them"
      )
  return kept, report


def _name(key) -> str:
  """``source language ...`` for a ``(source, lang)`` key."""
  if isinstance(key, tuple) and len(key) == 2:
    return f"source {key[0]} language {key[1]}"
  return f"source {key}"
