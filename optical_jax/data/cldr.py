"""Real, redistributable demo bitext: CLDR display names shipped in ``babel``.

The Unicode CLDR project's locale data holds human translations of territory,
language and currency names into hundreds of languages (Unicode License v3,
redistributable; ``babel`` ships it under BSD-3-Clause). Each English name and
its translation form one short "sentence pair". It needs no download: it is
inside the ``babel`` wheel that ``requirements.txt`` installs.

What it can show: whether an encoder maps a name in Swahili, Somali, Yoruba,
Hausa, Marathi, Tagalog (and German, French, Chinese, ...) close to its English
counterpart. What it cannot show: sentence-level or document-level retrieval
quality; the texts are one to four words long.

Pairs whose translation equals the English string (case-insensitively, e.g.
where CLDR falls back to English or the name is a loan word) are dropped,
since they would be matched by spelling alone; the count dropped is returned.
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

#: Which CLDR name tables to use.
KINDS = ("territories", "languages", "currencies")


@dataclasses.dataclass
class CLDRBitext:
  """English/foreign name pairs for one language."""

  lang: str
  pairs: List[Tuple[str, str]]  # (english, foreign)
  dropped_identical: int
  dropped_duplicate: int


def cldr_bitext(lang: str, kinds: Sequence[str] = KINDS) -> CLDRBitext:
  """Aligned (English, ``lang``) display names from CLDR, in a fixed order.

  Args:
    lang: a CLDR locale id (``sw``, ``so``, ``yo``, ``ha``, ``mr``, ``fil``, ``de``...).
    kinds: name tables to draw from (see :data:`KINDS`).

  Raises:
    ValueError: for an unknown locale or kind.
  """
  import babel  # pylint: disable=import-outside-toplevel

  try:
    foreign = babel.Locale.parse(lang)
  except (ValueError, babel.UnknownLocaleError) as e:
    raise ValueError(f"CLDR has no locale {lang!r} ({e})") from e
  english = babel.Locale.parse("en")
  pairs, identical, duplicate = [], 0, 0
  seen_en, seen_f = set(), set()
  for kind in kinds:
    if kind not in KINDS:
      raise ValueError(f"unknown CLDR name table {kind!r}; expected one of {KINDS}")
    en_names, f_names = getattr(english, kind), getattr(foreign, kind)
    for code in sorted(en_names):
      en, f = en_names[code], f_names.get(code)
      if not f or not en:
        continue
      if f.casefold() == en.casefold():
        identical += 1
        continue
      if en in seen_en or f in seen_f:
        duplicate += 1
        continue
      seen_en.add(en)
      seen_f.add(f)
      pairs.append((en, f))
  return CLDRBitext(lang, pairs, identical, duplicate)


def split_pairs(pairs: Sequence[Tuple[str, str]], test_fraction: float, seed: int = 0):
  """Deterministic split into disjoint (train, test) lists, each in a seeded
  random order (so any prefix is a random subset)."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  order = np.random.default_rng(seed).permutation(len(pairs))
  n_test = int(round(len(pairs) * test_fraction))
  test = [pairs[i] for i in order[:n_test]]
  train = [pairs[i] for i in order[n_test:]]
  return train, test
