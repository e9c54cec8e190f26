"""Named bitext sources -> per-language train/test splits, from the config.

``config.data.source``:

* ``cldr``: CLDR name pairs inside ``babel`` (offline demo; random pair split).
* ``tico19``: TICO-19 TMX zips in ``config.data.path`` (``all.en-<lang>.tmx.zip``);
  split by document, so test sentences come from documents never trained on.
* ``ntrex``: NTREX-128 root in ``config.data.path``; split by document.
* ``tatoeba``: LASER Tatoeba files in ``config.data.path``; split by pair.
* ``tsv``: ``config.data.path`` with ``{lang}`` in it, two columns (English first).
* ``mixture``: ``config.data.mixture``, a spec over the shared corpora under
  ``config.data.shared_root`` (:mod:`optical_jax.data.mixture`: cap ``config.data.cap``,
  deduplication, held-out test split, temperature sampling ``config.data.alpha``, English pairs
  ``config.data.english_pairs``); its languages come from the spec (``config.data.langs`` is
  not used).

Each language maps to ``{"train": [(en, foreign)], "test": [(en, foreign)],
"info": {...}}`` where ``info`` records the split rule and the counts.

:func:`load_splits_with_manifest` also returns a manifest (JSON-serialisable) for every source:
per-language counts, the source and path, licenses where known, and sha256 of the pairs used
(:func:`optical_jax.data.mixture.manifest_sha`), so every run can write one.

The overlap guard (:mod:`optical_jax.data.overlap`) runs for any source when
``config.data.overlap_collections`` is set: before the split, bitext repeating a query or
document of those collections raises (``config.data.overlap='error'``), is dropped (``drop``)
or only counted (``allow``). Without it the splits are exactly what they were before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

from optical_jax.data import bitext as bt
from optical_jax.data import mixture as mx
from optical_jax.data import overlap as ov
from optical_jax.data import roots
from optical_jax.data.cldr import cldr_bitext, split_pairs
from optical_jax.errors import UsageError

log = logging.getLogger(__name__)

SOURCES = ("cldr", "tico19", "ntrex", "tatoeba", "tsv", "mixture")
#: License of each single source (the mixture's corpora: optical_jax.data.corpora.CORPORA).
LICENSES = {
  "cldr": "Unicode License (CLDR via babel)",
  "tico19": "CC0 1.0 (TICO-19)",
  "ntrex": "CC BY-SA 4.0 (NTREX-128)",
  "tatoeba": "CC BY 2.0 FR (Tatoeba via LASER)",
  "tsv": "unknown (user-supplied file)",
}


def _as_tuples(pairs) -> List[Tuple[str, str]]:
  return [(p.english, p.foreign) for p in pairs]


def _field(d, name: str, default):
  """``config.data.<name>``, or ``default`` for configs made before the field existed."""
  return d.get(name, default) if hasattr(d, "get") else getattr(d, name, default)


def load_splits(config, resolve=None) -> Dict[str, dict]:
  """Reads ``config.data`` (source, path, langs, test_fraction, max_pairs_per_lang, seed, and
  for ``mixture`` the mixture fields) -> ``{lang: {"train", "test", "info"}}`` (``resolve``:
  as :func:`load_splits_with_manifest`)."""
  return load_splits_with_manifest(config, resolve=resolve)[0]


def load_splits_with_manifest(
  config, extra_collections=(), resolve=None, embed=None
) -> Tuple[Dict[str, dict], dict]:
  """:func:`load_splits` and the manifest of the data used (module docstring).

  ``extra_collections``: more collections for the overlap guard (``Collection`` objects); the
  trainer passes those its retrieval checks use. ``resolve``: ``(name, shared_root) ->
  Collection`` for the names of ``config.data.overlap_collections``
  (:func:`optical_jax.testsets.registry.guard_collection`; needed only when it names any).
  ``embed``: English texts -> [n, d] vectors (the teacher's), for a mixture whose
  ``config.data.select`` is ``question_like`` (:func:`optical_jax.data.mixture.build_mixture`).

  Raises ValueError when a language ends with no training pair or fewer than 2 test pairs (a
  matching accuracy over 0 or 1 pairs says nothing), before any model is loaded."""
  out, manifest = _load(config, extra_collections, resolve, embed)
  for lang, s in out.items():
    if not s["train"] or len(s["test"]) < 2:
      raise UsageError(
        f"config.data: language {lang!r} has {len(s['train'])} training and {len(s['test'])} "
        f"test pairs (source {config.data.source!r}, test_fraction "
        f"{config.data.test_fraction}); need at least 1 and 2: check its data or raise "
        "test_fraction"
      )
  return out, manifest


def _load(config, extra_collections, resolve, embed=None) -> Tuple[Dict[str, dict], dict]:
  d = config.data
  if d.source not in SOURCES:
    raise UsageError(f"config.data.source={d.source!r}; expected one of {SOURCES}")
  names = [c.strip() for c in str(_field(d, "overlap_collections", "")).split(",") if c.strip()]
  mode = _field(d, "overlap", "error")
  if mode not in ov.MODES:
    raise UsageError(f"config.data.overlap={mode!r}; expected one of {ov.MODES}")
  near = _field(d, "overlap_near", 0.0)  # a config made before the rule: exact rules only
  shared_root = _field(d, "shared_root", "") or roots.data_root()
  if names and resolve is None:
    raise TypeError("config.data.overlap_collections names collections: pass resolve")
  collections = [resolve(c, shared_root) for c in names] + list(extra_collections)
  if d.source == "mixture":
    return _load_mixture(config, collections, mode, shared_root, near, embed)
  if _field(d, "select", "random") != "random":
    raise UsageError(
      f"config.data.select={d.select!r} chooses within a mixture's cap; source "
      f"{d.source!r} has none (use source 'mixture', or select 'random')"
    )
  langs = [l.strip() for l in d.langs.split(",") if l.strip()]
  if not langs:
    raise UsageError("config.data.langs is empty")
  if d.source != "cldr" and not d.path:
    raise UsageError(f"config.data.path is required for source {d.source!r}")
  if d.source == "tsv" and len(langs) > 1 and "{lang}" not in d.path:
    raise UsageError(
      f"config.data.path={d.path!r} has no '{{lang}}' but config.data.langs names "
      f"{len(langs)} languages: every language would read the same file"
    )
  read = {lang: _read_single(d, lang) for lang in langs}
  report = {}
  if collections:
    kept, report = ov.check_overlap(
      {(d.source, lang): read[lang][0] for lang in langs},
      collections,
      mode,
      near=near,
    )
    read = {lang: (kept[(d.source, lang)],) + read[lang][1:] for lang in langs}
  out, rows = {}, []
  for lang in langs:
    pairs, extra, skipped, path = read[lang]
    info = {"source": d.source}
    if d.source == "cldr":
      train, test = split_pairs(pairs, d.test_fraction, seed=config.seed)
      info.update(split="random pairs", **extra)
    else:
      if d.source in ("tico19", "ntrex"):
        tr, te = bt.split_by_document(pairs, d.test_fraction, seed=config.seed)
        info.update(
          split="by document",
          train_docs=len({p.doc_id for p in tr}),
          test_docs=len({p.doc_id for p in te}),
        )
      else:
        tr, te = bt.split_by_pair(pairs, d.test_fraction, seed=config.seed)
        info.update(split="random pairs")
      train, test = _as_tuples(tr), _as_tuples(te)
      info["skipped"] = skipped
    cap = d.max_pairs_per_lang
    if cap:  # keep the split's proportions; pairs come in a seeded order for cldr, file order else
      n_test = int(round(cap * d.test_fraction))
      train, test = train[: cap - n_test], test[:n_test]
    info.update(train=len(train), test=len(test))
    out[lang] = {"train": train, "test": test, "info": info}
    r = report.get((d.source, lang), {})
    rows.append(
      {
        "corpus": d.source,
        "split": "all",
        "lang": lang,
        "license": LICENSES[d.source],
        "path": path,
        "available": r.get("pairs", len(pairs)),
        "skipped": skipped,
        "overlap": r.get("overlapping", 0),
        "overlap_removed": r.get("removed", 0),
        "overlap_collections": r.get("collections", {}),
        "overlap_near": r.get("near_duplicates", 0),
        "overlap_near_collections": r.get("near_collections", {}),
        "used": len(train) + len(test),
        "test": len(test),
        "train": len(train),
        "sampled": len(train),
        "sha256": mx.manifest_sha(train + test),
      }
    )
    log.info(
      "%s: %d train / %d test pairs (%s, %s split)",
      lang,
      len(train),
      len(test),
      d.source,
      info["split"],
    )
  english = mx.add_english_pairs(
    out, _field(d, "english_pairs", 0.0), d.test_fraction, config.seed, d.source
  )
  totals = {
    k: sum(r[k] for r in rows)
    for k in (
      "available",
      "skipped",
      "overlap",
      "overlap_removed",
      "overlap_near",
      "used",
      "test",
      "train",
    )
  }
  manifest = {
    "source": d.source,
    "path": d.path,
    "langs": langs,
    "seed": config.seed,
    "test_fraction": d.test_fraction,
    "max_pairs_per_lang": d.max_pairs_per_lang,
    "english": english,
    "overlap": {
      "mode": mode,
      "near": near,
      "collections": [getattr(c, "name", str(c)) for c in collections],
    },
    "sources": rows,
    "languages": {
      lang: {"train": len(s["train"]), "test": len(s["test"])} for lang, s in out.items()
    },
    "totals": totals,
    "train_sha256": mx.manifest_sha(p for s in out.values() for p in s["train"]),
    "test_sha256": mx.manifest_sha(p for s in out.values() for p in s["test"]),
  }
  return out, manifest


def _read_single(d, lang: str):
  """(pairs, extra info, skipped, path) of one language of a single source, before the split."""
  if d.source == "cldr":
    data = cldr_bitext(lang)
    extra = dict(dropped_identical=data.dropped_identical, dropped_duplicate=data.dropped_duplicate)
    return data.pairs, extra, data.dropped_identical + data.dropped_duplicate, "babel (CLDR)"
  if d.source == "tico19":
    data = bt.read_tmx(Path(d.path) / f"all.en-{lang}.tmx.zip", lang)
  elif d.source == "ntrex":
    data = bt.read_ntrex(d.path, lang)
  elif d.source == "tatoeba":
    data = bt.read_tatoeba(d.path, lang)
  else:
    data = bt.read_tsv(d.path.format(lang=lang))
  return data.pairs, {}, data.skipped, data.path


def _load_mixture(
  config, collections: List[str], mode: str, shared_root: str, near: float, embed=None
) -> Tuple[Dict[str, dict], dict]:
  d = config.data
  spec = _field(d, "mixture", "")
  if not spec.strip():
    raise ValueError(
      "config.data.mixture is empty; expected a spec such as "
      "'mafand:train:hau+yor, flores200:dev:all' for source 'mixture'"
    )
  if d.max_pairs_per_lang:
    raise ValueError(
      f"config.data.max_pairs_per_lang={d.max_pairs_per_lang} applies to single "
      "sources; use config.data.cap (pairs per corpus and language) with "
      "source 'mixture'"
    )
  return mx.build_mixture(
    spec,
    shared_root=shared_root,
    cap=_field(d, "cap", 0),
    alpha=_field(d, "alpha", 1.0),
    english_pairs=_field(d, "english_pairs", 0.0),
    test_fraction=d.test_fraction,
    seed=config.seed,
    overlap_collections=collections,
    overlap=mode,
    overlap_near=near,
    select=_field(d, "select", "random"),
    embed=embed,
  )
