"""Named bitext sources -> per-language train/test splits, from the config.

``config.data.source``:

* ``cldr``: CLDR name pairs inside ``babel`` (offline demo; random pair split).
* ``tico19``: TICO-19 TMX zips in ``config.data.path`` (``all.en-<lang>.tmx.zip``);
  split by document, so test sentences come from documents never trained on.
* ``ntrex``: NTREX-128 root in ``config.data.path``; split by document.
* ``tatoeba``: LASER Tatoeba files in ``config.data.path``; split by pair.
* ``tsv``: ``config.data.path`` with ``{lang}`` in it, two columns (English first).

Each language maps to ``{"train": [(en, foreign)], "test": [(en, foreign)],
"info": {...}}`` where ``info`` records the split rule and the counts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

from optical_jax.data import bitext as bt
from optical_jax.data.cldr import cldr_bitext, split_pairs

log = logging.getLogger(__name__)

SOURCES = ("cldr", "tico19", "ntrex", "tatoeba", "tsv")


def _as_tuples(pairs) -> List[Tuple[str, str]]:
  return [(p.english, p.foreign) for p in pairs]


def load_splits(config) -> Dict[str, dict]:
  """Reads ``config.data`` (source, path, langs, test_fraction, max_pairs_per_lang, seed)."""
  d = config.data
  if d.source not in SOURCES:
    raise ValueError(f"config.data.source={d.source!r}; expected one of {SOURCES}")
  langs = [l.strip() for l in d.langs.split(",") if l.strip()]
  if not langs:
    raise ValueError("config.data.langs is empty")
  if d.source != "cldr" and not d.path:
    raise ValueError(f"config.data.path is required for source {d.source!r}")
  out = {}
  for lang in langs:
    info = {"source": d.source}
    if d.source == "cldr":
      data = cldr_bitext(lang)
      train, test = split_pairs(data.pairs, d.test_fraction, seed=config.seed)
      info.update(split="random pairs", dropped_identical=data.dropped_identical,
                  dropped_duplicate=data.dropped_duplicate)
    else:
      if d.source == "tico19":
        data = bt.read_tmx(Path(d.path) / f"all.en-{lang}.tmx.zip", lang)
      elif d.source == "ntrex":
        data = bt.read_ntrex(d.path, lang)
      elif d.source == "tatoeba":
        data = bt.read_tatoeba(d.path, lang)
      else:
        data = bt.read_tsv(d.path.format(lang=lang))
      if d.source in ("tico19", "ntrex"):
        tr, te = bt.split_by_document(data.pairs, d.test_fraction, seed=config.seed)
        info.update(split="by document", train_docs=len({p.doc_id for p in tr}),
                    test_docs=len({p.doc_id for p in te}))
      else:
        tr, te = bt.split_by_pair(data.pairs, d.test_fraction, seed=config.seed)
        info.update(split="random pairs")
      train, test = _as_tuples(tr), _as_tuples(te)
      info["skipped"] = data.skipped
    cap = d.max_pairs_per_lang
    if cap:  # keep the split's proportions; pairs come in a seeded order for cldr, file order else
      n_test = int(round(cap * d.test_fraction))
      train, test = train[:cap - n_test], test[:n_test]
    info.update(train=len(train), test=len(test))
    out[lang] = {"train": train, "test": test, "info": info}
    log.info("%s: %d train / %d test pairs (%s, %s split)", lang, len(train), len(test), d.source,
             info["split"])
  return out
