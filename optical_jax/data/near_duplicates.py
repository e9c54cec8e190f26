"""Near duplicates of short texts: character n-gram Jaccard similarity, found by MinHash LSH.

The overlap guard (``data/overlap.py``) calls :func:`find_near_duplicates` with the bitext sides
and the queries of each evaluation collection, all as *keys*: the text's ``words()`` joined by
single spaces (normalised, casefolded, punctuation dropped), so case and punctuation never
matter. The decision is the exact one; MinHash only proposes candidates:

* **similarity:** the Jaccard similarity ``|A & B| / |A | B|`` of the sets of character
  :data:`NGRAM`-grams (5 by default) of the two keys (:func:`ngrams`, :func:`jaccard`); a pair
  is a near duplicate when it is at least the threshold (the guard's default
  :data:`THRESHOLD`, 0.8: a question with one word of five to ten changed). A key shorter than
  the n-gram length has no n-gram: only the exact rules apply to it.
* **candidates:** a MinHash signature of :data:`PERMUTATIONS` (128) values per key, all keys at
  once in numpy: every n-gram of the concatenated keys is hashed to 32 bits (a polynomial hash
  of its code points and the splitmix64 finaliser), each permutation is ``(a * x + b) mod 2**32``
  (``a`` odd, so a bijection of the 32-bit values; fixed seed, so the same everywhere) and
  ``np.minimum.reduceat`` takes each key's minimum. The signature is cut into ``b`` bands of
  ``r`` rows; a side and a query whose rows agree on any band are a candidate (bands joined by
  sorting, not one Python lookup per key).
* **banding and misses:** a pair of Jaccard ``s`` shares a band with probability
  ``1 - (1 - s**r)**b``. :func:`banding` takes the largest ``r`` (at most 8, ``b = 128 // r``)
  whose miss probability ``(1 - t**r)**b`` at the threshold ``t`` is at most :data:`MISS`
  (1e-7): at 0.8 that is 32 bands of 4 rows, missing a pair at exactly 0.8 with probability
  4.7e-8 (5.6e-11 at 0.85, 1.5e-15 at 0.9); 0.5 takes 64 bands of 2 rows (1.0e-8), 0.9 25
  of 5. A candidate whose signatures agree on fewer than ``t - 8 sd`` of the 128 values
  (``sd = sqrt(t (1 - t) / 128)``: 0.517 at 0.8) is dropped before the exact check: a pair at
  the threshold falls that far below its expected agreement with probability under 1e-15.
  These figures assume ideal min-wise hashing; ``tests/data/test_near_duplicates.py`` checks
  that the LSH finds every pair a brute-force Jaccard finds on a few hundred seeded pairs.
* **verification:** each remaining candidate's exact Jaccard on its n-gram sets (Python sets of
  substrings, no hashing): no false positives, and the match reported is the query of highest
  Jaccard (the first one on ties).

Speed (2026-12-07, one core of an AMD EPYC (family 25, KVM, 2 vCPUs shared), ``lscpu``):
``python -c "from optical_jax.data.near_duplicates import bench; print(bench())"`` matches 50,000 synthetic sides (30-150
characters) against 30,000 queries (25-100 characters), with 300 planted near duplicates; the
figure is in docs/RELIABILITY.md (section "Overlap guard: near duplicates").
"""

from __future__ import annotations

import math
import time
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

#: Character n-gram length.
NGRAM = 5
#: Default Jaccard threshold of the guard (``config.data.overlap_near``).
THRESHOLD = 0.8
#: MinHash values per key.
PERMUTATIONS = 128
#: Largest miss probability of the banding at the threshold (ideal min-wise hashing).
MISS = 1e-7
#: Seed of the permutations (fixed: the same candidates on every machine).
SEED = 20261207
#: Candidate pairs checked for signature agreement at a time (bounds memory: 2 x this x 128 x 4 B).
_CHUNK = 65536

_U64 = np.uint64


def ngrams(key: str, n: int = NGRAM) -> Set[str]:
  """The set of character n-grams of ``key`` (empty when it is shorter than ``n``)."""
  return {key[i : i + n] for i in range(len(key) - n + 1)}


def jaccard(a: Set[str], b: Set[str]) -> float:
  """``|a & b| / |a | b|`` (0 for two empty sets)."""
  if not a and not b:
    return 0.0
  inter = len(a & b)
  return inter / (len(a) + len(b) - inter)


def banding(threshold: float, permutations: int = PERMUTATIONS) -> Tuple[int, int, float]:
  """``(bands, rows, miss)``: the most rows per band (<= 8) whose probability of missing a pair
  at Jaccard ``threshold``, ``(1 - threshold**rows)**bands``, is at most :data:`MISS`."""
  best = (permutations, 1, (1.0 - threshold) ** permutations)
  for rows in range(2, 9):
    bands = permutations // rows
    miss = (1.0 - threshold**rows) ** bands
    if miss <= MISS:
      best = (bands, rows, miss)
  return best


def _permutations(k: int) -> Tuple[np.ndarray, np.ndarray]:
  """``(a, b)`` uint32 [k] of the permutations ``(a x + b) mod 2**32``, ``a`` odd."""
  rng = np.random.default_rng(SEED)
  a = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
  b = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32)
  return a, b


def _mix(h: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser of uint64 ``h`` -> its high 32 bits, uint32."""
  h = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
  h = (h ^ (h >> _U64(27))) * _U64(0x94D049BB133111EB)
  return ((h ^ (h >> _U64(31))) >> _U64(32)).astype(np.uint32)


def signatures(keys: Sequence[str], n: int = NGRAM, k: int = PERMUTATIONS):
  """MinHash signatures of ``keys`` (module docstring).

  Returns ``(rows, sig)``: ``rows`` int64 [m], the indices of the keys with at least one n-gram
  (``len(key) >= n``), and ``sig`` uint32 [m, k], their signatures in that order."""
  lens = np.fromiter(map(len, keys), np.int64, len(keys))
  rows = np.flatnonzero(lens >= n)
  if not len(rows):
    return rows, np.zeros((0, k), np.uint32)
  code = np.frombuffer("".join(keys).encode("utf-32-le"), np.uint32).astype(np.uint64)
  width = len(code) - n + 1
  h = np.zeros(width, np.uint64)
  with np.errstate(over="ignore"):
    for j in range(n):  # polynomial hash of every window of n code points (mod 2**64)
      h = h * _U64(0x100000001B3) + code[j : j + width]
    starts = np.cumsum(lens) - lens
    count = lens[rows] - n + 1  # windows of each key with one
    first = np.cumsum(count) - count
    window = np.arange(count.sum()) - np.repeat(first - starts[rows], count)
    x = _mix(h[window])
    a, b = _permutations(k)
    sig = np.empty((len(rows), k), np.uint32)
    for j in range(k):
      sig[:, j] = np.minimum.reduceat(x * a[j] + b[j], first)
  return rows, sig


def _band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
  """uint64 [m]: a hash of band ``band`` (``rows`` values) of each signature."""
  h = np.zeros(len(sig), np.uint64)
  with np.errstate(over="ignore"):
    for j in range(band * rows, (band + 1) * rows):
      h = (h ^ sig[:, j].astype(np.uint64)) * _U64(0x9E3779B97F4A7C15)
  return h


def _join(left: np.ndarray, right: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Index pairs ``(i, j)`` with ``left[i] == right[j]`` (int64 arrays)."""
  order = np.argsort(right, kind="stable")
  ordered = right[order]
  lo = np.searchsorted(ordered, left, "left")
  count = np.searchsorted(ordered, left, "right") - lo
  i = np.repeat(np.arange(len(left)), count)
  offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
  return i, order[np.repeat(lo, count) + offset]


def _candidates(side_sig, query_sig, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
  """Distinct (side row, query row) pairs sharing a band and agreeing on enough values."""
  bands, rows, _ = banding(threshold, side_sig.shape[1])
  found = []
  for band in range(bands):
    i, j = _join(_band_keys(side_sig, band, rows), _band_keys(query_sig, band, rows))
    found.append(i * len(query_sig) + j)
  pair = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
  i, j = pair // len(query_sig), pair % len(query_sig)
  k = side_sig.shape[1]
  least = max(0.0, threshold - 8.0 * math.sqrt(threshold * (1.0 - threshold) / k)) * k
  keep = np.zeros(len(pair), bool)
  for s in range(0, len(pair), _CHUNK):
    agree = (side_sig[i[s : s + _CHUNK]] == query_sig[j[s : s + _CHUNK]]).sum(1)
    keep[s : s + _CHUNK] = agree >= least - 1e-9
  return i[keep], j[keep]


def find_near_duplicates(
  sides: Sequence[str],
  query_sets: Sequence[Sequence[str]],
  threshold: float = THRESHOLD,
  n: int = NGRAM,
) -> List[Dict[int, Tuple[int, float]]]:
  """Which sides are near duplicates of which queries (module docstring).

  Args:
    sides: keys (``words()`` joined by spaces) of the texts to check.
    query_sets: keys of the queries, one sequence per collection.
    threshold: the Jaccard similarity at and above which a pair is a near duplicate, in (0, 1].
    n: the character n-gram length.

  Returns:
    One dict per query set: ``{side index: (query index, jaccard)}`` for every side with a
    query of Jaccard >= ``threshold``; the query is the most similar one (the first on ties).
  """
  if not 0.0 < threshold <= 1.0:
    raise ValueError(f"near-duplicate threshold {threshold!r}; expected a value in (0, 1]")
  out: List[Dict[int, Tuple[int, float]]] = [{} for _ in query_sets]
  if not sides or not any(query_sets):
    return out
  side_rows, side_sig = signatures(sides, n)
  sets: Dict[str, Set[str]] = {}

  def grams(key: str) -> Set[str]:
    got = sets.get(key)
    if got is None:
      got = sets[key] = ngrams(key, n)
    return got

  for found, queries in zip(out, query_sets):
    query_rows, query_sig = signatures(queries, n)
    if not len(query_rows) or not len(side_rows):
      continue
    i, j = _candidates(side_sig, query_sig, threshold)
    for s, q in zip(side_rows[i].tolist(), query_rows[j].tolist()):
      a, b = grams(sides[s]), grams(queries[q])
      if min(len(a), len(b)) < threshold * max(len(a), len(b)):
        continue  # the sizes alone rule it out
      sim = jaccard(a, b)
      if sim >= threshold and (s not in found or (sim, -q) > (found[s][1], -found[s][0])):
        found[s] = (q, sim)
  return out


def _synthetic(rng, n_texts: int, low: int, high: int, vocab: List[str]) -> List[str]:
  """Random keys of ``low``-``high`` characters made of words of ``vocab``."""
  out = []
  for size in rng.integers(low, high + 1, n_texts):
    text = []
    while sum(map(len, text)) + len(text) < size:
      text.append(vocab[rng.integers(len(vocab))])
    out.append(" ".join(text)[:size].strip())
  return out


def bench(sides: int = 50000, queries: int = 30000, planted: int = 300, seed: int = 0) -> dict:
  """Times :func:`find_near_duplicates` on synthetic keys (module docstring); returns the
  figures (seconds, candidates found)."""
  rng = np.random.default_rng(seed)
  letters = list("abcdefghijklmnopqrstuvwxyz")
  vocab = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(20000)]
  vocab += ["the", "of", "what", "is", "who", "in", "a", "and", "how", "many"] * 200
  side_keys = _synthetic(rng, sides, 30, 150, vocab)
  query_keys = _synthetic(rng, queries, 25, 100, vocab)
  for t in range(planted):  # a query with one word changed, as a side
    w = query_keys[t].split()
    w[rng.integers(len(w))] = vocab[rng.integers(len(vocab))]
    side_keys[rng.integers(sides)] = " ".join(w)
  start = time.perf_counter()
  found = find_near_duplicates(side_keys, [query_keys])[0]
  seconds = time.perf_counter() - start
  return {"sides": sides, "queries": queries, "seconds": round(seconds, 2), "found": len(found)}
