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
  (50k pairs against 3k passages of 300k words: about a second);
* **near duplicate of a query** (``near``, ``config.data.overlap_near``, default 0.8; 0 turns it
  off): the Jaccard similarity of the character 5-gram sets of the side's and a query's
  :func:`words` joined by spaces is at least ``near`` (``data/near_duplicates.py``: MinHash LSH
  candidates, each verified exactly, so no false positives). Queries only, every language
  including the English references; a text shorter than 5 characters there has no 5-gram, and
  only the exact rules apply to it. A pair matched by this rule alone is counted as a near
  duplicate (``near_duplicates``, per collection ``near_collections``) and otherwise treated as
  any overlap.

The guard runs on the bitext before the split, so it also covers what is built from it: the
English (English, English) pairs and the bank of English training questions of the contrastive
term (``training/student.py: distinct_english``) are the English sides of the guarded pairs.

``collections`` are ``Collection`` objects (``testsets/collection_format.py``); the names that
configs give (``config.data.overlap_collections``: folders, ``irds:`` ids, ``afriqa``) are
resolved by :func:`optical_jax.testsets.registry.guard_collection` before they get here.
Modes: ``error`` (default) raises one line naming source, language, collection, count and an
example (for a near duplicate, both texts and their similarity); ``drop`` removes the
overlapping pairs; ``allow`` keeps them. Every mode returns the counts, for the run's manifest.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import unicodedata
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

from optical_jax.data import near_duplicates as nd

log = logging.getLogger(__name__)


MODES = ("error", "drop", "allow")
#: A bitext side needs this many words to be looked for inside documents.
MIN_SUBSTRING_WORDS = 8
#: Default Jaccard threshold of the near-duplicate rule (``config.data.overlap_near``).
NEAR_THRESHOLD = nd.THRESHOLD


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
    self.queries: Dict[str, Tuple[str, str]] = {}  # word key -> (label, text), for ``near``
    for lang, queries in collection.queries.items():
      for qid, text in queries.items():
        w = words(text)
        self._add(text, f"query {lang}/{qid}", w)
        self.queries.setdefault(" ".join(w), (f"query {lang}/{qid}", text))
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
  near: float = NEAR_THRESHOLD,
):
  """Compares bitext with evaluation collections (module docstring).

  Args:
    pairs_by_source: ``{(source, lang): pairs}``; pairs are ``BitextPair`` or
      ``(english, foreign)`` tuples. A key that is not a 2-tuple is shown as is.
    collections: ``Collection`` objects (module docstring); each one's ``name`` is what the
      report and the messages call it.
    mode: ``error``, ``drop`` or ``allow``.
    flag: the config field named in the error message.
    near: the near-duplicate rule's Jaccard threshold in [0, 1]; 0 turns the rule off.

  Returns:
    ``(kept, report)``: ``kept`` maps each key to its pairs (the overlapping ones removed in
    ``drop`` mode, all of them otherwise, in input order); ``report`` maps each key to
    ``{"pairs", "overlapping", "removed", "collections": {name: count}, "example",
    "near_duplicates", "near_collections": {name: count}, "near_example"}``: the pairs that
    overlap only by the near rule (in all collections, and per collection) and one of them.

  Raises:
    ValueError: in ``error`` mode when any pair overlaps, or for an unknown mode or threshold.
  """
  if mode not in MODES:
    raise ValueError(f"{flag}={mode!r}; expected one of {MODES}")
  if not 0.0 <= near <= 1.0:
    raise ValueError(f"{flag}_near={near!r}; expected a Jaccard threshold in [0, 1] (0 = off)")
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
  nears = _near(side_words, indexes, hits, near)
  kept, report = {}, {}
  for key, pairs in pairs_by_source.items():
    keep, counts, near_counts, overlapping, near_only = [], {}, {}, 0, 0
    example = near_example = None
    for i, p in enumerate(pairs):
      bad = exact = False
      for index, matched, close in zip(indexes, hits, nears):
        hit = _hit(p, matched)  # an exact match in this collection first, else a near one
        is_near = hit is None
        hit = hit or _hit(p, close)
        if hit is None:
          continue
        side, text, label = hit
        counts[index.name] = counts.get(index.name, 0) + 1
        what = f"{_where(p, i)} {side} {text[:80]!r} = {index.name} {label}"
        example = example or what
        if is_near:
          near_counts[index.name] = near_counts.get(index.name, 0) + 1
          near_example = near_example or what
        bad, exact = True, exact or not is_near
      overlapping += bad
      near_only += bad and not exact
      if not (bad and mode == "drop"):
        keep.append(p)
    kept[key] = keep
    report[key] = {
      "pairs": len(pairs),
      "overlapping": overlapping,
      "removed": len(pairs) - len(keep),
      "collections": counts,
      "example": example,
      "near_duplicates": near_only,
      "near_collections": near_counts,
      "near_example": near_example,
    }
    if overlapping:
      log.warning(
        "overlap guard: %s: %d of %d pairs overlap %s (%s)%s; mode %s",
        _name(key),
        overlapping,
        len(pairs),
        counts,
        example,
        _near_note(report[key]),
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
        f"{_near_note(r)}{more}; set {flag}=drop to remove them or {flag}=allow to keep them"
      )
  return kept, report


def _hit(pair, matched: Dict[str, str]) -> Optional[Tuple[str, str, str]]:
  """``(side name, text, what it matches)`` of the first side of ``pair`` in ``matched``."""
  for side, text in zip(("English", "foreign"), _sides(pair)):
    if text in matched:
      return side, text, matched[text]
  return None


def _near_note(r: dict) -> str:
  """`` (n of them near duplicates ...)`` for a report entry with near duplicates, else ''."""
  n = r["near_duplicates"]
  if not n:
    return ""
  example = "" if r["near_example"] == r["example"] else f"; e.g. {r['near_example']}"
  return f" ({n} of them near duplicates of a query, not exact matches{example})"


def _near(side_words, indexes, hits, near: float) -> List[Dict[str, str]]:
  """Per collection, side text -> the query it is a near duplicate of (label, text and
  Jaccard), for the sides the exact rules did not match in that collection."""
  if not near or not indexes:
    return [{} for _ in indexes]
  texts_of: Dict[str, List[str]] = {}  # word key -> the side texts with it
  for text, w in side_words.items():
    texts_of.setdefault(" ".join(w), []).append(text)
  side_keys = list(texts_of)
  query_keys = [list(index.queries) for index in indexes]
  found = nd.find_near_duplicates(side_keys, query_keys, near)
  out = []
  for index, matched, pairs, keys in zip(indexes, hits, found, query_keys):
    close = {}
    for s, (q, sim) in pairs.items():
      label, query = index.queries[keys[q]]
      for text in texts_of[side_keys[s]]:
        if text not in matched:
          close[text] = f"{label} {query[:80]!r} (near duplicate, Jaccard {sim:.2f})"
    out.append(close)
  return out


def _name(key) -> str:
  """``source language ...`` for a ``(source, lang)`` key."""
  if isinstance(key, tuple) and len(key) == 2:
    return f"source {key[0]} language {key[1]}"
  return f"source {key}"
