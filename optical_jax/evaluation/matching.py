"""Bitext matching accuracy: the standard cross-lingual alignment check.

For aligned pairs (e_i, f_i), the foreign->English accuracy is the fraction of
i whose nearest English neighbour (cosine) is e_i, and English->foreign the
reverse (as the Tatoeba evaluation of Artetxe & Schwenk 2019, reported as
accuracy rather than error). Ties count as misses unless the true partner
is strictly best.
"""

from __future__ import annotations

import numpy as np


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


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
