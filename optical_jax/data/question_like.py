"""Question-like selection for a bitext mixture (``data/mixture.py``, step 4b): of a sentence
corpus's pairs, keep those whose English side is most like the mixture's questions.

A sentence's *question likeness* is its mean cosine, in the teacher's embedding space, to its
:data:`QUESTION_NEIGHBOURS` nearest English questions of the mixture's question corpora
(:attr:`optical_jax.data.corpora.CorpusInfo.questions`: AfriQA, CIRAL). Issue 27 item 3: news
and Wikipedia bitext of a language without its own questions, chosen to look like questions.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional, Sequence

import numpy as np

from optical_jax.data import corpora

log = logging.getLogger(__name__)

#: A sentence's question likeness is its mean cosine to this many nearest reference questions.
QUESTION_NEIGHBOURS = 10


def check(sources: Sequence, cap: int, embed) -> None:
  """Refuses, before any read, a selection that cannot run. ``sources``: the spec's
  :class:`optical_jax.data.mixture_spec.Source` entries."""
  asked = [s.name for s in sources]
  if not cap:
    raise ValueError("select='question_like' needs cap > 0: the pairs to keep per corpus")
  if embed is None:
    raise ValueError("select='question_like' needs embed (the teacher's English encoder)")
  is_q = [corpora.CORPORA[s.corpus].questions for s in sources]
  if not any(is_q):
    raise ValueError(
      "select='question_like': the spec has no question corpus (afriqa, ciral) to compare "
      f"with; sources: {asked}"
    )
  if all(is_q):
    raise ValueError(
      "select='question_like': the spec has only question corpora, nothing to select "
      f"from; sources: {asked}"
    )


def unit_embeddings(embed: Callable[[List[str]], np.ndarray], texts: Sequence[str]) -> np.ndarray:
  """[len(texts), d] float32 unit vectors of ``embed(texts)``; a wrong shape is refused."""
  x = np.asarray(embed(list(texts)), np.float32)
  if x.ndim != 2 or x.shape[0] != len(texts):
    raise ValueError(f"embed returned shape {x.shape} for {len(texts)} texts; expected [n, d]")
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def question_likeness(
  sentences: Sequence[str],
  questions: Sequence[str],
  embed: Callable[[List[str]], np.ndarray],
  neighbours: int = QUESTION_NEIGHBOURS,
  chunk: int = 4096,
  reference: Optional[np.ndarray] = None,
) -> np.ndarray:
  """[len(sentences)] float32: each sentence's mean cosine to its ``neighbours`` nearest
  ``questions`` (all of them when fewer), both embedded by ``embed`` (list of str ->
  [n, d] vectors; normalised here, so any scale works). ``reference``: the questions' unit
  vectors (:func:`unit_embeddings`) when already computed."""
  if not questions:
    raise ValueError("question_likeness: no reference questions")
  if not sentences:
    return np.zeros(0, np.float32)
  ref = unit_embeddings(embed, questions) if reference is None else reference
  k = min(neighbours, len(questions))
  out = []
  for start in range(0, len(sentences), chunk):
    sim = unit_embeddings(embed, sentences[start : start + chunk]) @ ref.T  # [chunk, questions]
    out.append(np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:].mean(axis=1))
  return np.concatenate(out).astype(np.float32)


def select(rows, pairs_of, keys_of, groups, cap, embed, reference) -> None:
  """Keeps, in place, each sentence corpus's (corpus, lang) ``cap`` pairs most like
  ``reference`` (ties to the earlier pair), in file order.

  Args:
    rows, pairs_of, keys_of: per source, its manifest row (``selected_out`` and the mean
      likeness of what was kept and left out are written), its pairs (``BitextPair``), their
      deduplication keys.
    groups: (corpus, lang) -> the indices of its sources (a corpus's splits together).
    cap: pairs kept per (corpus, lang).
    embed: English texts -> [n, d] vectors.
    reference: the question corpora's distinct English sides.
  """
  if not reference:
    raise ValueError(
      "select='question_like': no question is left after the overlap guard to compare with"
    )
  log.info(
    "question-like selection: %d distinct English questions as the reference", len(reference)
  )
  vectors = unit_embeddings(embed, reference)  # once for every corpus
  for (corpus, lang), ks in groups.items():
    if corpora.CORPORA[corpus].questions:
      continue
    english = [p.english for k in ks for p in pairs_of[k]]
    score = question_likeness(english, reference, embed, reference=vectors)
    keep = np.ones(len(english), bool)
    if len(english) > cap:
      keep[:] = False
      keep[np.argsort(-score, kind="stable")[:cap]] = True
    start = 0
    for k in ks:
      n = len(pairs_of[k])
      mask, part = keep[start : start + n], score[start : start + n]
      rows[k]["selected_out"] = int(n - mask.sum())
      rows[k]["question_likeness_kept"] = round(float(part[mask].mean()), 4) if mask.any() else None
      rows[k]["question_likeness_left_out"] = (
        round(float(part[~mask].mean()), 4) if (~mask).any() else None
      )
      pairs_of[k] = [p for p, m in zip(pairs_of[k], mask) if m]
      keys_of[k] = [q for q, m in zip(keys_of[k], mask) if m]
      start += n
    log.info(
      "%s:%s: kept %d of %d pairs most like the questions (mean likeness %.3f kept, %.3f all)",
      corpus,
      lang,
      int(keep.sum()),
      len(english),
      float(score[keep].mean()) if keep.any() else float("nan"),
      float(score.mean()) if len(score) else float("nan"),
    )
