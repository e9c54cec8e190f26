"""Approximate first-stage search over pooled vectors with FAISS (flat, IVF, HNSW).

For collections where exact search (``search.py``) is too slow: FAISS builds an inner-product
index over the normalised document vectors of the dense ranker and returns each query's top-k
with their exact dot products (IVF and HNSW only approximate *which* documents are found).
``recall_against`` measures that approximation against exact search, so a user can choose the
index and its settings; eval.py reports it with ``--index_recall``. MaxSim re-ranks an
approximate run through ``--first_stage`` (``eval.py --ranker dense --index hnsw`` first).

faiss-cpu is an optional dependency (``requirements.txt`` lists it); a missing one is an error
that says how to install it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Tuple

import numpy as np

from optical_jax.errors import UsageError

log = logging.getLogger(__name__)

#: ``exact`` is search.py's exact search on the device; the others are FAISS indexes.
INDEX_KINDS = ("exact", "flat", "ivf", "hnsw")


@dataclasses.dataclass(frozen=True)
class AnnConfig:
  """FAISS index settings.

  kind: ``flat`` (exact, ``IndexFlatIP``), ``ivf`` (``IndexIVFFlat``: k-means cells, a query
    visits ``nprobe`` of them) or ``hnsw`` (``IndexHNSWFlat``: a proximity graph).
  nlist: IVF cells; 0 = ``4 * sqrt(N)`` (at least 1, at most N / 39 so k-means has data).
  nprobe: IVF cells visited per query.
  train_per_cell: IVF k-means trains on at most this many vectors per cell (a uniform sample,
    seed 0; FAISS asks for at least 39): k-means on all of a large collection costs
    ``N * nlist * d`` per iteration for little gain; 0 = every vector.
  hnsw_m: HNSW neighbours per node; ef_construction / ef_search: its candidate-list sizes.
  """

  kind: str = "hnsw"
  nlist: int = 0
  nprobe: int = 16
  hnsw_m: int = 32
  ef_construction: int = 80
  ef_search: int = 128
  train_per_cell: int = 64

  def __post_init__(self):
    if self.kind not in INDEX_KINDS[1:]:
      raise UsageError(f"index {self.kind!r}: expected one of {INDEX_KINDS[1:]}")
    if self.train_per_cell < 0:
      raise UsageError(f"index setting train_per_cell={self.train_per_cell}: must be >= 0")
    for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search"):
      if getattr(self, name) < 1:
        raise UsageError(f"index setting {name}={getattr(self, name)}: must be >= 1")
    if self.nlist < 0:
      raise UsageError(f"index setting nlist={self.nlist}: must be >= 0 (0 = automatic)")


def _faiss():
  try:
    import faiss  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise UsageError(
      "an approximate index needs FAISS: pip install faiss-cpu "
      "(or faiss-gpu); --index exact needs nothing"
    ) from e
  return faiss


def nlist_for(n: int, cfg: AnnConfig) -> int:
  """IVF cell count for ``n`` documents (module docstring of :class:`AnnConfig`)."""
  want = cfg.nlist or int(4 * math.sqrt(n))
  return max(1, min(want, n // 39 if n >= 39 else 1))


def build_index(vectors: np.ndarray, cfg: AnnConfig):
  """vectors [N, d] (normalised; inner product = cosine) -> a searchable FAISS index."""
  faiss = _faiss()
  x = np.ascontiguousarray(vectors, dtype=np.float32)
  n, d = x.shape
  if cfg.kind == "flat":
    index = faiss.IndexFlatIP(d)
  elif cfg.kind == "ivf":
    cells = nlist_for(n, cfg)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, cells, faiss.METRIC_INNER_PRODUCT)
    sample = x
    if cfg.train_per_cell and n > cfg.train_per_cell * cells:
      rows = np.random.default_rng(0).choice(n, cfg.train_per_cell * cells, replace=False)
      sample = x[np.sort(rows)]
    index.train(sample)
    index.nprobe = min(cfg.nprobe, cells)
  else:
    index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = cfg.ef_construction
    index.hnsw.efSearch = cfg.ef_search
  index.add(x)
  log.info("FAISS %s index over %d vectors of %d dims", cfg.kind, n, d)
  return index


def ann_search(index, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """queries [Q, d] -> (scores [Q, k'], indices [Q, k']) best first, ``k' = min(k, N)``; slots
  the index could not fill are index -1 and score -inf (as ``search.search``)."""
  kk = min(k, index.ntotal)
  if kk < 1:
    raise UsageError(f"k={k}: must be >= 1")
  if hasattr(index, "hnsw"):
    index.hnsw.efSearch = max(index.hnsw.efSearch, kk)  # HNSW returns at most efSearch results
  scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
  scores = np.where(idx >= 0, scores, -np.inf).astype(np.float32)
  return scores, idx.astype(np.int64)


def recall_against(approx: np.ndarray, exact: np.ndarray) -> float:
  """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (indices [Q, k]; -1 is
  an empty slot). 1.0 means the approximate index found every document exact search found."""
  out = []
  for a, e in zip(approx, exact):
    want = set(int(x) for x in e if x >= 0)
    if want:
      out.append(len(want & set(int(x) for x in a if x >= 0)) / len(want))
  return float(np.mean(out)) if out else float("nan")
