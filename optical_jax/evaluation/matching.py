"""Bitext matching accuracy: the standard cross-lingual alignment check.

For aligned pairs (e_i, f_i), the foreign->English accuracy is the fraction of
i whose nearest English neighbour (cosine) is e_i, and English->foreign the
reverse (as the Tatoeba evaluation of Artetxe & Schwenk 2019, reported as
accuracy rather than error). Ties count as misses unless the true partner
is strictly best.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict

import numpy as np

log = logging.getLogger(__name__)


def matching_hits(foreign: np.ndarray, english: np.ndarray):
  """foreign, english: [N, d] embeddings of aligned pairs (row i with row i).

  Returns ``(f2e, e2f)``, bool [N] each: whether pair i's partner is strictly the nearest
  neighbour in that direction (for paired tests between two models on the same pairs).
  """
  if foreign.shape != english.shape:
    raise ValueError(f"shape mismatch: foreign {foreign.shape} vs english {english.shape}")
  sim = _unit(foreign) @ _unit(english).T  # [N, N]
  diag = np.diag(sim)
  off = sim.copy()
  np.fill_diagonal(off, -np.inf)
  return diag > off.max(axis=1), diag > off.max(axis=0)


def matching_accuracy(foreign: np.ndarray, english: np.ndarray) -> dict:
  """foreign, english: [N, d] embeddings of aligned pairs (row i with row i).

  Returns ``{"f2e": float, "e2f": float, "n": N}``. Raises ValueError for N < 2: with no other
  candidate every pair would count as matched.
  """
  if len(foreign) < 2:
    raise ValueError(f"matching accuracy needs at least 2 pairs, got {len(foreign)}")
  f2e, e2f = matching_hits(foreign, english)
  return {"f2e": float(np.mean(f2e)), "e2f": float(np.mean(e2f)), "n": int(len(f2e))}


def matching_by_language(
  encode_foreign: Callable, encode_english: Callable, splits: Dict[str, dict]
) -> Dict[str, dict]:
  """Bitext-matching accuracy (:func:`matching_accuracy`) per language on the test pairs of
  ``splits`` (``{lang: {"test": [(english, foreign), ...]}}``); ``encode_foreign`` and
  ``encode_english``: texts -> embeddings [N, d] (the query and the document side)."""
  results = {}
  for lang, split in splits.items():
    en = [e for e, _ in split["test"]]
    fo = [f for _, f in split["test"]]
    acc = matching_accuracy(encode_foreign(fo), encode_english(en))
    results[lang] = acc
    log.info("%s: f2e %.3f  e2f %.3f  (n=%d)", lang, acc["f2e"], acc["e2f"], acc["n"])
  return results


def format_table(rows: Dict[str, Dict[str, dict]]) -> str:
  """Markdown: one row per language, foreign->English / English->foreign accuracy per method
  (``rows``: ``{method: {lang: matching_accuracy(...)}}``)."""
  methods = list(rows)
  langs = list(next(iter(rows.values())))
  head = "| lang | n | " + " | ".join(f"{m} f2e | {m} e2f" for m in methods) + " |"
  lines = [head, "|" + "---|" * (2 + 2 * len(methods))]
  for lang in langs:
    cells = [f"{rows[m][lang]['f2e']:.3f} | {rows[m][lang]['e2f']:.3f}" for m in methods]
    lines.append(f"| {lang} | {rows[methods[0]][lang]['n']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
