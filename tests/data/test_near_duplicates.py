"""Near duplicates (data/near_duplicates.py): the exact Jaccard against a plain reference, the
banding's miss bound, and MinHash LSH against a brute-force search on seeded random pairs."""

import random
import time

import numpy as np
import pytest

from optical_jax.data import near_duplicates as nd
from optical_jax.data.overlap import words


def _key(text):
  return " ".join(words(text))


def _reference_jaccard(a, b, n=5):
  """Plain Python: lists of n-grams, duplicates removed by hand, intersection by membership."""
  grams_a, grams_b = [], []
  for text, out in ((a, grams_a), (b, grams_b)):
    for i in range(len(text) - n + 1):
      if text[i : i + n] not in out:
        out.append(text[i : i + n])
  union = list(grams_a)
  for g in grams_b:
    if g not in union:
      union.append(g)
  if not union:
    return 0.0
  return sum(1 for g in grams_a if g in grams_b) / len(union)


def test_jaccard_matches_a_plain_reference_on_random_strings():
  rng = random.Random(0)
  for _ in range(300):
    alphabet = rng.choice(["ab", "abc ", "abcdefgh ", "ẹọụ ab"])
    a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    b = a[: rng.randint(0, len(a))] + "".join(
      rng.choice(alphabet) for _ in range(rng.randint(0, 9))
    )
    for n in (1, 3, 5):
      assert nd.jaccard(nd.ngrams(a, n), nd.ngrams(b, n)) == pytest.approx(
        _reference_jaccard(a, b, n), abs=1e-12
      )


def test_banding_bounds_the_miss_probability():
  bands, rows, miss = nd.banding(0.8)
  assert (bands, rows) == (32, 4) and miss == pytest.approx(4.75e-8, rel=1e-2)
  for t in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0):
    bands, rows, miss = nd.banding(t)
    assert bands * rows <= nd.PERMUTATIONS and miss <= nd.MISS
    assert miss == pytest.approx((1 - t**rows) ** bands)


def test_a_paraphrase_with_one_word_changed_is_caught_and_an_unrelated_text_is_not():
  query = "Who is the current president of the Federal Republic of Nigeria?"
  sides = [
    "who WAS the current president of the federal republic of Nigeria",  # one word, case
    "What is the largest city in northern Nigeria?",  # shares words, another question
    "Nigeria",
    "abc",  # shorter than the n-gram: exact rules only
  ]
  found = nd.find_near_duplicates([_key(s) for s in sides], [[_key(query), "abc"]])[0]
  assert list(found) == [0]
  assert found[0][0] == 0 and found[0][1] == pytest.approx(0.828125)
  assert nd.find_near_duplicates([_key(sides[0])], [[_key(query)]], threshold=0.9) == [{}]


def test_signatures_skip_keys_shorter_than_the_ngram():
  rows, sig = nd.signatures(["abcd", "abcde", "", "abcdefgh"])
  assert rows.tolist() == [1, 3] and sig.shape == (2, nd.PERMUTATIONS)
  assert sig.dtype == np.uint32
  # equal n-gram sets (in any order, repeated) give equal signatures
  rows, sig = nd.signatures(["xyzab xyzab", "xyzab xyzab xyzab"])
  assert (sig[0] == sig[1]).all()


def _mutate(rng, text, vocab):
  """A near-duplicate candidate: 1-3 word substitutions, insertions or deletions."""
  w = text.split()
  for _ in range(rng.randint(1, 3)):
    op = rng.random()
    i = rng.randrange(len(w))
    if op < 0.4:
      w[i] = rng.choice(vocab)
    elif op < 0.7:
      w.insert(i, rng.choice(vocab))
    elif len(w) > 2:
      del w[i]
  return " ".join(w)


def test_lsh_finds_every_pair_the_brute_force_finds():
  """300 seeded sides made from 300 queries by word edits (Jaccard spread around 0.8) plus 100
  unrelated sides, against the 300 queries and 100 unrelated ones: the LSH's matches are
  exactly those of an all-pairs Jaccard search, at three thresholds."""
  rng = random.Random(7)
  vocab = [
    "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 8))) for _ in range(500)
  ]
  queries = [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 20))) for _ in range(400)]
  sides = [_mutate(rng, q, vocab) for q in queries[:300]]
  sides += [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 20))) for _ in range(100)]
  side_sets = [nd.ngrams(s) for s in sides]
  query_sets = [nd.ngrams(q) for q in queries]
  sims = np.array([[nd.jaccard(a, b) for b in query_sets] for a in side_sets])
  assert 50 < (sims.max(1) >= 0.8).sum() < 300  # pairs on both sides of the threshold
  for t in (0.6, 0.8, 0.9):
    start = time.time()
    found = nd.find_near_duplicates(sides, [queries], threshold=t)[0]
    assert time.time() - start < 1.0
    expected = {
      s: (int(np.argmax(sims[s])), sims[s].max()) for s in range(len(sides)) if sims[s].max() >= t
    }
    assert set(found) == set(expected), t
    for s, (q, sim) in found.items():
      assert q == expected[s][0] and sim == pytest.approx(expected[s][1])


def test_bad_threshold():
  with pytest.raises(ValueError, match=r"expected a value in \(0, 1\]"):
    nd.find_near_duplicates(["abcdef"], [["abcdef"]], threshold=0.0)


def test_fast_on_the_guards_scale():
  """The module docstring's benchmark, smaller: 10k sides against 6k queries."""
  figures = nd.bench(sides=10000, queries=6000, planted=60)
  assert figures["seconds"] < 2.5 and figures["found"] >= 10
