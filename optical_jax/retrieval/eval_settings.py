"""The settings of one retrieval evaluation, as one frozen object: what ``eval.py``'s flags say
about how to retrieve and score (not which models, collection or output), passed whole from
the command through :func:`optical_jax.retrieval.collection_eval.run_eval` to
:func:`optical_jax.retrieval.collection_eval.evaluate_collection`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from optical_jax.retrieval.ann import AnnConfig
from optical_jax.retrieval.plaid import PlaidConfig


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """How to evaluate (each field is the ``eval.py`` flag of the same name, except ``ann``).

  langs: query languages (None = every language of the collection).
  ranker: ``"dense"`` (pooled vectors), ``"maxsim"`` (late interaction) or ``"auto"`` (MaxSim
    when the document model has a late-interaction head, else dense).
  k: depth of each run (at least 1).
  first_stage: a TREC run path (``{lang}`` is replaced): re-rank only its documents.
  batch_size: texts per forward pass.
  max_length / doc_max_length: query / document token limits (None = the models').
  cache_dir: where document representations are cached (``run_eval``: None = ``OUT/cache``;
    ``evaluate_collection``: None = no cache).
  dtype: compute dtype of the models ``run_eval`` loads (``float32`` or ``bfloat16``).
  index: ``"exact"``, a FAISS index over the dense ranker's vectors (``flat``, ``ivf``,
    ``hnsw``; ``retrieval/ann.py``) with settings ``ann`` (None = :class:`AnnConfig`'s), or
    ``plaid``, MaxSim's first stage (``retrieval/plaid.py``) with settings ``plaid`` (None =
    :class:`PlaidConfig`'s).
  index_recall: also run exact search and report the index's recall@k against it.
  measures: ir_measures names (None or empty = ``evaluation.metrics.DEFAULT_MEASURES``).
  """

  langs: Optional[Tuple[str, ...]] = None
  ranker: str = "auto"
  k: int = 1000
  first_stage: Optional[str] = None
  batch_size: int = 32
  max_length: Optional[int] = None
  doc_max_length: Optional[int] = None
  cache_dir: Optional[str] = None
  dtype: str = "float32"
  index: str = "exact"
  ann: Optional[AnnConfig] = None
  plaid: Optional[PlaidConfig] = None
  index_recall: bool = False
  measures: Optional[Tuple[str, ...]] = None
