"""A bitext mixture over the shared corpora: cap, deduplicate, guard, hold out, then sample.

A spec names the sources, e.g.::

  afriqa:train:hau+ibo+kin+zul, ciral:all:hau+yor, flores200:dev:hau+ibo+kin+yor+zul,
  mafand:train+dev:hau, menyo20k:train:yor

Each entry is ``corpus:splits:langs`` (parsed by :func:`optical_jax.data.mixture_spec.parse_spec`) (``+`` between several; ``all`` = every split, or every
language, the corpus has; for splits it leaves out evaluation-only ones such as FLORES devtest,
see :class:`optical_jax.data.corpora.CorpusInfo`). Languages are ISO 639-3 codes. The order of
the spec matters: it is the order in which duplicates are resolved.

:func:`build_mixture` runs, in this order:

1. **read** every (corpus, split, lang) with :func:`optical_jax.data.corpora.read_corpus`;
2. **cap** each (corpus, lang) at ``cap`` pairs (0 = no cap), a seeded random subset across its
   splits, kept in file order (``select="random"``; ``"random_sentences"``: the same, question
   corpora kept whole; ``"question_like"``: step 4b instead);
3. **deduplicate** across all sources by the normalised (English, foreign) pair
   (:func:`optical_jax.data.overlap.normalize`: NFKC, casefold, whitespace collapsed); the first
   source in spec order keeps it (duplicates inside one file count for that file too);
4. the **overlap guard** (:func:`optical_jax.data.overlap.check_overlap`) against the
   evaluation collections, if any;
4b. with ``select="question_like"``, the **question-like selection**
   (:mod:`optical_jax.data.question_like`): question corpora are kept whole, and each sentence
   corpus's (corpus, lang) keeps the ``cap`` pairs most like their English sides, counted in
   the manifest (``selected_out``);
5. the **held-out test split**, per language, ``test_fraction`` of its pairs, seeded. Pairs that
   share a normalised English side (in any language: FLORES is multi-way, WMT24++ has two
   Swahili translations of each segment) or a normalised foreign side (same language) are kept
   on one side of the split together, so no test pair, and no text of one, is ever trained on;
   per-language test sizes therefore match ``round(test_fraction * n)`` closely but not always
   exactly. This happens BEFORE sampling, so repeats cannot leak test pairs;
6. **temperature sampling** of the training pairs across languages (XLM-R style): language ``l``
   with ``n_l`` pairs gets weight ``q_l = n_l^alpha / sum_k n_k^alpha`` and ``round(q_l * N)``
   pairs (largest remainders; same total ``N = sum n_l``): ``alpha = 1`` keeps the natural
   proportions, ``alpha < 1`` upsamples small languages. A language that gets more pairs than
   it has repeats all of them (``m // n`` times) plus a seeded subset; one that gets fewer is
   subsampled without replacement. Each language has its own seeded generator;
7. **English pairs** (``english_pairs`` = fraction ``f`` of the final total): ``round(f / (1 - f)
   * N)`` (English, English) pairs from the distinct English sides of the sampled training pairs,
   as language ``eng``, so the student keeps its English side close to the teacher; ``eng`` is
   tested on the distinct English sides of the test pairs (English never trained on).

Returns the structure :func:`optical_jax.data.sources.load_splits` returns (``{lang: {"train":
[(en, foreign)], "test": [...], "info": {...}}}``) and a manifest (:func:`build_mixture`).
"""

from __future__ import annotations

import collections
import logging
import zlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from optical_jax.data import corpora
from optical_jax.data import overlap as ov
from optical_jax.data import question_like
from optical_jax.data.mixture_spec import parse_spec
from optical_jax.data.roots import data_root
from optical_jax.io import sha256_lines

log = logging.getLogger(__name__)

#: How pairs beyond ``cap`` are chosen: a seeded random subset, or those most like the questions.
SELECTIONS = ("random", "random_sentences", "question_like")

ENGLISH = "eng"


def _sides(pair) -> Tuple[str, str]:
  if hasattr(pair, "english"):
    return pair.english, pair.foreign
  return pair[0], pair[1]


def manifest_sha(pairs: Iterable) -> str:
  """sha256 (hex) of the pairs as sorted ``english<TAB>foreign`` lines joined by newlines.

  ``pairs`` are ``BitextPair`` or ``(english, foreign)`` tuples; order does not matter, repeats
  do."""
  return sha256_lines(sorted(f"{e}\t{f}" for e, f in map(_sides, pairs)))


def _rng(seed: int, *key: str) -> np.random.Generator:
  """A generator for (seed, key): independent of which other keys exist."""
  return np.random.default_rng([seed] + [zlib.crc32(k.encode("utf-8")) for k in key])


def temperature_weights(counts: Dict[str, int], alpha: float) -> Dict[str, float]:
  """``q_l = n_l^alpha / sum n^alpha`` (languages without pairs get 0)."""
  if alpha < 0:
    raise ValueError(f"alpha={alpha!r}; expected alpha >= 0 (1 = natural proportions)")
  raw = {l: (float(n) ** alpha if n > 0 else 0.0) for l, n in counts.items()}
  total = sum(raw.values())
  return {l: (r / total if total else 0.0) for l, r in raw.items()}


def sampled_counts(counts: Dict[str, int], alpha: float) -> Dict[str, int]:
  """``round(q_l * N)`` per language, by largest remainders so the total stays ``N``."""
  weights = temperature_weights(counts, alpha)
  total = sum(counts.values())
  exact = {l: w * total for l, w in weights.items()}
  out = {l: int(np.floor(x)) for l, x in exact.items()}
  short = total - sum(out.values())
  by_remainder = sorted(exact, key=lambda l: (-(exact[l] - out[l]), l))
  for l in by_remainder[:short]:
    out[l] += 1
  return out


def _realise(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
  """How often each of ``n`` items is used to get ``m`` items: ``m // n`` each plus a
  seeded subset without replacement of ``m % n``."""
  times = np.full(n, m // n if n else 0, dtype=np.int64)
  if n:
    times[rng.permutation(n)[: m % n]] += 1
  return times


class _UnionFind:
  def __init__(self):
    self.parent: Dict = {}

  def find(self, x):
    self.parent.setdefault(x, x)
    root = x
    while self.parent[root] != root:
      root = self.parent[root]
    while self.parent[x] != root:
      self.parent[x], x = root, self.parent[x]
    return root

  def union(self, a, b):
    ra, rb = self.find(a), self.find(b)
    if ra != rb:
      self.parent[rb] = ra


def _hold_out(
  items: List[Tuple[str, Tuple[str, str]]], test_fraction: float, seed: int
) -> np.ndarray:
  """Which of ``items`` ((lang, (norm English, norm foreign))) go to test.

  Items sharing a normalised English side (any language) or foreign side (same language) form
  one unit; units are visited in a seeded order and each goes to test when that brings the
  per-language test sizes closer (in sum) to ``round(test_fraction * n_lang)``."""
  uf = _UnionFind()
  for lang, (en, fo) in items:
    uf.union(("en", en), ("fo", lang, fo))
  units: Dict = {}
  for i, (lang, (en, _)) in enumerate(items):
    units.setdefault(uf.find(("en", en)), []).append(i)
  units_list = list(units.values())  # in order of first item
  per_lang = collections.Counter(lang for lang, _ in items)
  target = {l: round(test_fraction * n) for l, n in per_lang.items()}
  size = collections.Counter()
  in_test = np.zeros(len(items), bool)
  for u in np.random.default_rng(seed).permutation(len(units_list)):
    unit = units_list[u]
    add = collections.Counter(items[i][0] for i in unit)
    delta = sum(abs(size[l] + c - target[l]) - abs(size[l] - target[l]) for l, c in add.items())
    if delta < 0:
      in_test[unit] = True
      size.update(add)
  return in_test


def add_english_pairs(
  splits: Dict[str, dict], fraction: float, test_fraction: float, seed: int, source: str
) -> dict:
  """Step 7 (module docstring), in place: adds language ``eng`` with ``round(f / (1 - f) * N)``
  (English, English) training pairs drawn from the distinct English sides of the ``N`` training
  pairs of ``splits``, and a test split from the English sides of the test pairs (never trained
  on). Any source can use it (``data/sources.py``). Returns the counts for the manifest."""
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"english_pairs={fraction!r}; expected a fraction in [0, 1)")
  english = {"fraction": fraction, "train": 0, "test": 0}
  if fraction <= 0:
    return english
  langs = [l for l in splits if l != ENGLISH]
  n_sampled = sum(len(splits[l]["train"]) for l in langs)
  n_eng = round(fraction / (1.0 - fraction) * n_sampled)
  pool = _distinct_english(p for l in langs for p in splits[l]["train"])
  test_pool = _distinct_english(p for l in langs for p in splits[l]["test"])
  rng = _rng(seed, "english")
  eng_train = (
    [
      (pool[i], pool[i])
      for i, t in enumerate(_realise(len(pool), n_eng, rng))
      for _ in range(int(t))
    ]
    if pool
    else []
  )
  n_test = (
    len(test_pool)
    if test_fraction >= 1.0
    else min(len(test_pool), round(len(eng_train) * test_fraction / (1.0 - test_fraction)))
  )
  pick = np.sort(rng.permutation(len(test_pool))[:n_test])
  eng_test = [(test_pool[i], test_pool[i]) for i in pick]
  splits[ENGLISH] = {
    "train": eng_train,
    "test": eng_test,
    "info": {
      "source": source,
      "split": f"English sides of the {source} pairs",
      "train": len(eng_train),
      "test": len(eng_test),
      "distinct_train_english": len(pool),
    },
  }
  english.update(train=len(eng_train), test=len(eng_test), distinct=len(pool))
  log.info(
    "eng: %d (English, English) train pairs (%.0f%% of %d) / %d test",
    len(eng_train),
    100 * fraction,
    len(eng_train) + n_sampled,
    len(eng_test),
  )
  return english


def build_mixture(
  spec: str,
  shared_root=None,
  cap: int = 0,
  alpha: float = 1.0,
  english_pairs: float = 0.0,
  test_fraction: float = 0.3,
  seed: int = 0,
  overlap_collections: Sequence = (),
  overlap: str = "error",
  overlap_near: float = ov.NEAR_THRESHOLD,
  roots: Optional[Dict[str, str]] = None,
  select: str = "random",
  embed: Optional[Callable[[List[str]], np.ndarray]] = None,
) -> Tuple[Dict[str, dict], dict]:
  """Builds the mixture (module docstring).

  Args:
    spec: the mixture spec.
    shared_root: the folder holding the corpora (None: :func:`optical_jax.data.roots.data_root`).
    cap: pairs per (corpus, language) before deduplication; 0 = all.
    alpha: sampling temperature exponent (1 = natural proportions).
    english_pairs: fraction of the final training total that is (English, English), in [0, 1).
    test_fraction: held-out share per language, in [0, 1].
    seed: seed of the cap, the split, the sampling and the English pairs.
    overlap_collections: evaluation collections for the overlap guard (``Collection`` objects,
      as :func:`optical_jax.testsets.registry.guard_collection` resolves them); empty = no guard.
    overlap: the guard's mode, ``error``, ``drop`` or ``allow``.
    overlap_near: the guard's near-duplicate threshold (Jaccard, 0 = off).
    roots: corpus name -> folder, overriding ``shared_root/<directory>``.
    select: how ``cap`` chooses, one of :data:`SELECTIONS` (module docstring, steps 2 and 4b).
    embed: list of English texts -> [n, d] vectors (the teacher's), for ``question_like``.

  Returns:
    ``(splits, manifest)``. ``splits``: ``{lang: {"train": [(en, foreign)], "test": [...],
    "info": {...}}}`` in order of first appearance in the spec (``eng`` last). ``manifest``:
    the parameters, ``sources`` (one entry per (corpus, split, lang): license, path,
    available, skipped by the reader, capped, duplicates, overlap (matched / removed by the
    guard / matched by its near-duplicate rule alone), used, test, train, sampled, sha256 of
    the used pairs), ``languages`` (train before/after sampling, weight, test), ``english``
    and ``totals``.
  """
  if cap < 0:
    raise ValueError(f"cap={cap!r}; expected 0 (no cap) or a positive number of pairs")
  if not 0.0 <= english_pairs < 1.0:
    raise ValueError(f"english_pairs={english_pairs!r}; expected a fraction in [0, 1)")
  if not 0.0 <= test_fraction <= 1.0:
    raise ValueError(f"test_fraction={test_fraction!r}; expected a fraction in [0, 1]")
  if overlap not in ov.MODES:
    raise ValueError(f"overlap={overlap!r}; expected one of {ov.MODES}")
  temperature_weights({}, alpha)  # validates alpha
  if select not in SELECTIONS:
    raise ValueError(f"select={select!r}; expected one of {SELECTIONS}")
  sources = parse_spec(spec)
  by_likeness = select == "question_like"
  if by_likeness:
    question_like.check(sources, cap, embed)
  shared_root = data_root() if shared_root is None else shared_root
  roots = roots or {}
  rows = []  # one dict per source, becomes the manifest entry
  pairs_of: List[list] = []
  for s in sources:
    data = corpora.read_corpus(
      s.corpus, roots.get(s.corpus), s.lang, s.split, shared_root=shared_root
    )
    pairs_of.append(list(data.pairs))
    rows.append(
      {
        "corpus": s.corpus,
        "split": s.split,
        "lang": s.lang,
        "license": corpora.CORPORA[s.corpus].license,
        "path": data.path,
        "available": len(data),
        "skipped": data.skipped,
      }
    )
    log.info(
      "%s: %d pairs (%d skipped by the reader) from %s", s.name, len(data), data.skipped, data.path
    )

  # 2. cap per (corpus, lang), across its splits
  groups: Dict[Tuple[str, str], List[int]] = {}
  for k, s in enumerate(sources):
    groups.setdefault((s.corpus, s.lang), []).append(k)
  for (corpus, lang), ks in groups.items():
    total = sum(len(pairs_of[k]) for k in ks)
    keep = np.ones(total, bool)
    whole = by_likeness or (select == "random_sentences" and corpora.CORPORA[corpus].questions)
    if cap and total > cap and not whole:  # question_like caps in step 4b
      keep[:] = False
      keep[np.sort(_rng(seed, "cap", corpus, lang).permutation(total)[:cap])] = True
    start = 0
    for k in ks:
      n = len(pairs_of[k])
      mask = keep[start : start + n]
      pairs_of[k] = [p for p, m in zip(pairs_of[k], mask) if m]
      rows[k]["capped"] = int(n - mask.sum())
      start += n

  # 3. deduplicate, first source in spec order wins
  seen, keys_of = set(), []
  for k, pairs in enumerate(pairs_of):
    kept, keys = [], []
    for p in pairs:
      en, fo = _sides(p)
      key = (ov.normalize(en), ov.normalize(fo))
      if key in seen:
        continue
      seen.add(key)
      kept.append(p)
      keys.append(key)
    rows[k]["duplicates"] = len(pairs) - len(kept)
    pairs_of[k] = kept
    keys_of.append(keys)

  # 4. overlap guard
  for row in rows:
    row["overlap"], row["overlap_removed"], row["overlap_near"] = 0, 0, 0
  if overlap_collections:
    by_key = {(f"{s.corpus}:{s.split}", s.lang): pairs_of[k] for k, s in enumerate(sources)}
    kept_by_key, report = ov.check_overlap(by_key, overlap_collections, overlap, near=overlap_near)
    for k, s in enumerate(sources):
      key = (f"{s.corpus}:{s.split}", s.lang)
      r = report[key]
      rows[k]["overlap"], rows[k]["overlap_removed"] = r["overlapping"], r["removed"]
      rows[k]["overlap_collections"] = r["collections"]
      rows[k]["overlap_near"] = r["near_duplicates"]
      rows[k]["overlap_near_collections"] = r["near_collections"]
      if r["removed"]:
        kept_ids = {id(p) for p in kept_by_key[key]}
        keys_of[k] = [q for p, q in zip(pairs_of[k], keys_of[k]) if id(p) in kept_ids]
        pairs_of[k] = kept_by_key[key]

  # 4b. question-like selection
  for row in rows:  # 0 unless the selection runs
    row["selected_out"] = 0
  if by_likeness:
    questions = [k for k, s in enumerate(sources) if corpora.CORPORA[s.corpus].questions]
    reference = _distinct_english(_sides(p) for k in questions for p in pairs_of[k])
    question_like.select(rows, pairs_of, keys_of, groups, cap, embed, reference)

  # 5. held-out test split per language (units of pairs sharing a side)
  flat = [(k, i) for k, pairs in enumerate(pairs_of) for i in range(len(pairs))]
  items = [(sources[k].lang, keys_of[k][i]) for k, i in flat]
  in_test = _hold_out(items, test_fraction, seed) if flat else np.zeros(0, bool)
  langs = list(dict.fromkeys(s.lang for s in sources))
  train: Dict[str, List[Tuple[int, Tuple[str, str]]]] = {l: [] for l in langs}
  test: Dict[str, List[Tuple[str, str]]] = {l: [] for l in langs}
  for row, pairs in zip(rows, pairs_of):
    row.update(used=len(pairs), sha256=manifest_sha(pairs), test=0, train=0, sampled=0)
  for (k, i), t in zip(flat, in_test):
    pair = _sides(pairs_of[k][i])
    if t:
      test[sources[k].lang].append(pair)
      rows[k]["test"] += 1
    else:
      train[sources[k].lang].append((k, pair))
      rows[k]["train"] += 1

  # 6. temperature sampling
  before = {l: len(train[l]) for l in langs}
  after = sampled_counts(before, alpha)
  weights = temperature_weights(before, alpha)
  splits, languages = {}, {}
  total_before = sum(before.values())
  for lang in langs:
    times = _realise(before[lang], after[lang], _rng(seed, "sample", lang))
    sampled = []
    for (k, pair), t in zip(train[lang], times):
      sampled.extend([pair] * int(t))
      rows[k]["sampled"] += int(t)
    languages[lang] = {
      "train_before": before[lang],
      "train_after": after[lang],
      "natural_weight": before[lang] / total_before if total_before else 0.0,
      "weight": weights[lang],
      "test": len(test[lang]),
    }
    info = {
      "source": "mixture",
      "split": "random pairs; pairs sharing a text kept together",
      "sources": [s.name for s in sources if s.lang == lang],
      "train_before_sampling": before[lang],
      "weight": weights[lang],
      "train": len(sampled),
      "test": len(test[lang]),
    }
    splits[lang] = {"train": sampled, "test": test[lang], "info": info}
    log.info(
      "%s: %d train pairs (%d before sampling, weight %.3f) / %d test",
      lang,
      len(sampled),
      before[lang],
      weights[lang],
      len(test[lang]),
    )

  # 7. English pairs
  english = add_english_pairs(splits, english_pairs, test_fraction, seed, "mixture")

  totals = {
    k: sum(r[k] for r in rows)
    for k in (
      "available",
      "skipped",
      "capped",
      "selected_out",
      "duplicates",
      "overlap",
      "overlap_removed",
      "overlap_near",
      "used",
      "test",
      "train",
      "sampled",
    )
  }
  totals["english_train"] = english["train"]
  totals["train_total"] = totals["sampled"] + english["train"]
  manifest = {
    "source": "mixture",
    "spec": spec,
    "alpha": alpha,
    "seed": seed,
    "cap": cap,
    "select": select,
    "question_neighbours": question_like.QUESTION_NEIGHBOURS if by_likeness else None,
    "test_fraction": test_fraction,
    "english_pairs": english_pairs,
    "shared_root": str(shared_root),
    "overlap": {
      "mode": overlap,
      "near": overlap_near,
      "collections": _collection_names(overlap_collections),
    },
    "sources": rows,
    "languages": languages,
    "english": english,
    "totals": totals,
    "train_sha256": manifest_sha(p for s in splits.values() for p in s["train"]),
    "test_sha256": manifest_sha(p for s in splits.values() for p in s["test"]),
  }
  log.info(
    "mixture: %d pairs used of %d (capped %d, left out by the question-like selection %d, "
    "duplicates %d, overlap removed %d); %d train / %d test",
    totals["used"],
    totals["available"],
    totals["capped"],
    totals["selected_out"],
    totals["duplicates"],
    totals["overlap_removed"],
    totals["train_total"],
    totals["test"],
  )
  return splits, manifest


def _distinct_english(pairs: Iterable[Tuple[str, str]]) -> List[str]:
  """English sides, one per normalised text, in order of first appearance."""
  seen, out = set(), []
  for en, _ in pairs:
    key = ov.normalize(en)
    if key not in seen:
      seen.add(key)
      out.append(en)
  return out


def _collection_names(collections) -> List[str]:
  if isinstance(collections, str):
    return [c.strip() for c in collections.split(",") if c.strip()]
  return [c if isinstance(c, str) else getattr(c, "name", str(c)) for c in collections]
