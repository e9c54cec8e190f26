"""The spec of a bitext mixture (``data/mixture.py``): ``corpus:splits:langs, ...`` -> the
(corpus, split, language) sources it names, checked against the corpora's splits and languages
(:data:`optical_jax.data.corpora.CORPORA`), in spec order.
"""

from __future__ import annotations

import dataclasses
from typing import List

from optical_jax.data import corpora


@dataclasses.dataclass(frozen=True)
class Source:
  """One (corpus, split, language) of a spec."""

  corpus: str
  split: str
  lang: str

  @property
  def name(self) -> str:
    return f"{self.corpus}:{self.split}:{self.lang}"


def parse_spec(spec: str) -> List[Source]:
  """``corpus:splits:langs, ...`` -> sources in spec order (per entry: splits, then languages)."""
  entries = [e.strip() for e in spec.split(",") if e.strip()]
  if not entries:
    raise ValueError(
      f"mixture spec {spec!r} is empty; expected 'corpus:splits:langs, ...' "
      "(e.g. 'mafand:train+dev:hau+yor, flores200:dev:all')"
    )
  out, seen = [], {}
  for entry in entries:
    fields = [f.strip() for f in entry.split(":")]
    if len(fields) != 3 or not all(fields):
      raise ValueError(
        f"mixture spec entry {entry!r}: expected corpus:splits:langs "
        "(e.g. 'mafand:train+dev:hau+yor')"
      )
    name, splits, langs = fields
    if name not in corpora.CORPORA:
      raise ValueError(
        f"mixture spec entry {entry!r}: unknown corpus {name!r}; available: "
        f"{sorted(corpora.CORPORA)}"
      )
    info = corpora.CORPORA[name]
    split_list = _items(entry, "split", splits)
    lang_list = _items(entry, "language", langs)
    if lang_list == ["all"]:
      lang_list = [l for l in info.langs if info.trainable_splits(l)]
    bad = [l for l in lang_list if l not in info.langs]
    if bad:
      raise ValueError(
        f"mixture spec entry {entry!r}: {name} has no language(s) {bad}; "
        f"available (ISO 639-3): {sorted(info.langs)}"
      )
    if split_list != ["all"]:
      bad = [s for s in split_list if s not in info.splits]
      if bad:
        raise ValueError(
          f"mixture spec entry {entry!r}: {name} has no split(s) {bad}; "
          f"available: {list(info.splits)} (or 'all')"
        )
    for split_name in info.splits if split_list == ["all"] else split_list:
      for lang in lang_list:
        if split_list == ["all"]:
          if not info.trainable_splits(lang):
            raise ValueError(
              f"mixture spec entry {entry!r}: {name} {lang} has no split to train on"
            )
          if split_name not in info.trainable_splits(lang):
            continue
        elif split_name not in info.splits_of(lang):
          raise ValueError(
            f"mixture spec entry {entry!r}: {name} {lang} has no split "
            f"{split_name!r}; available: {info.splits_of(lang)}"
          )
        source = Source(name, split_name, lang)
        if source in seen:
          raise ValueError(
            f"mixture spec entry {entry!r}: {source.name} is already in entry "
            f"{seen[source]!r}; name each source once"
          )
        seen[source] = entry
        out.append(source)
  return out


def _items(entry: str, what: str, text: str) -> List[str]:
  items = [t.strip() for t in text.split("+")]
  if not all(items):
    raise ValueError(
      f"mixture spec entry {entry!r}: empty {what} in {text!r}; expected "
      f"{what}s joined by '+', or 'all'"
    )
  if "all" in items and len(items) > 1:
    raise ValueError(f"mixture spec entry {entry!r}: 'all' cannot be combined with other {what}s")
  return items
