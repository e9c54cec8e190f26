"""Entry point: cross-lingual retrieval evaluation.

  python eval.py --query_model M --collection DIR --output OUT [--doc_model M2]
                 [--langs swa,som,...] [--ranker auto|dense|maxsim] [--k 1000]
                 [--first_stage 'runs/run.{lang}.trec'] [--index exact|flat|ivf|hnsw|plaid]
                 [--measures AP,nDCG@10,R@100,RR,P@10]

Models are anything `python -m optical_jax.commands.embed --model` takes; `--doc_model`
defaults to the teacher recorded in a student's work directory. Writes
OUT/run.<lang>.trec (tagged with the query model's name), OUT/per_query.<lang>.tsv (qid,
measure, value: the trec_eval -q view), OUT/metrics.json and OUT/report.md.
"""

import sys

from absl import flags, logging

from optical_jax import cli
from optical_jax.evaluation.metrics import check_measures
from optical_jax.io import work_lock
from optical_jax.retrieval.collection_eval import run_eval
from optical_jax.retrieval.eval_settings import EvalSettings
from optical_jax.retrieval.ann import AnnConfig
from optical_jax.retrieval.plaid import PlaidConfig

_QUERY = flags.DEFINE_string("query_model", None, "Query-side model (a student work dir, ...).")
_DOC = flags.DEFINE_string(
  "doc_model", None, "Document-side model (default: the student's teacher)."
)
_COLLECTION = flags.DEFINE_string("collection", None, "Collection directory (or irds:<id>).")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory.")
_LANGS = flags.DEFINE_list("langs", None, "Query languages (default: all in the collection).")
_RANKER = flags.DEFINE_enum(
  "ranker",
  "auto",
  ["auto", "dense", "maxsim"],
  "Scoring; auto: MaxSim when the document model has a late-interaction "
  "head (train.py's teacher stage), else dense (pooled vectors).",
)
_K = flags.DEFINE_integer("k", 1000, "Run depth.")
_INDEX = flags.DEFINE_enum(
  "index",
  "exact",
  ["exact", "flat", "ivf", "hnsw", "plaid"],
  "exact search; for the dense ranker a FAISS index (flat, ivf, hnsw; faiss-cpu); for MaxSim "
  "plaid, a PLAID-style first stage (centroids of the token vectors, saved beside the token "
  "store; optical_jax/retrieval/plaid.py).",
)
_RECALL = flags.DEFINE_bool(
  "index_recall", False, "Also run exact search and report the index's recall@k against it."
)
_NPROBE = flags.DEFINE_integer("nprobe", 16, "IVF: cells visited per query.")
_NLIST = flags.DEFINE_integer("nlist", 0, "IVF: cells (0 = 4 sqrt(N)).")
_EF = flags.DEFINE_integer("ef_search", 128, "HNSW: candidate list per query.")
_PLAID = PlaidConfig()
_PLAID_PROBE = flags.DEFINE_integer(
  "plaid_nprobe", _PLAID.nprobe, "PLAID: centroids per query token whose documents are candidates."
)
_PLAID_THRESHOLD = flags.DEFINE_float(
  "plaid_threshold",
  _PLAID.centroid_threshold,
  "PLAID: document tokens whose centroid scores below this for every query token are pruned "
  "from the approximate score.",
)
_PLAID_NDOCS = flags.DEFINE_integer(
  "plaid_ndocs", _PLAID.ndocs, "PLAID: candidates scored by exact MaxSim per query."
)
_PLAID_CENTROIDS = flags.DEFINE_integer(
  "plaid_centroids", 0, "PLAID: centroids (0 = 2^floor(log2(16 sqrt(tokens)))); a change rebuilds."
)
_FIRST = flags.DEFINE_string("first_stage", None, "Re-rank this TREC run ('{lang}' is replaced).")
_MEASURES = flags.DEFINE_list(
  "measures",
  None,
  "ir_measures names (AP, nDCG@10, R@100, RR, P@10, ...; trec_eval -c semantics); default "
  "MAP, nDCG@10, nDCG@20, P@10, R@100, MRR.",
)


def _known_measures(names) -> bool:
  """Flag validator: every --measures name is one ir_measures computes (checked at parsing,
  before any work; cli.parse_flags prints the error as one line, exit 2)."""
  try:
    check_measures(names or ())
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
  return True


flags.register_validator("measures", _known_measures)
_BATCH = flags.DEFINE_integer("batch_size", 32, "Texts per forward pass.")
_MAXLEN = flags.DEFINE_integer("max_length", None, "Query token limit (default: the model's).")
_DOCLEN = flags.DEFINE_integer(
  "doc_max_length", None, "Document token limit (default: the model's)."
)
_CACHE = flags.DEFINE_string("cache_dir", None, "Document-embedding cache (default OUT/cache).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_SHARD = flags.DEFINE_bool(
  "shard_docs",
  True,
  "Exact search: split the documents over all devices (and hosts) when "
  "there is more than one; the runs are the same as on one device.",
)
_DIST = flags.DEFINE_bool(
  "distributed",
  False,
  "Multi-host: call jax.distributed.initialize first (every host runs the "
  "same command; see optical_jax/training/distributed.py).",
)
flags.mark_flags_as_required(["query_model", "collection", "output"])


def main(argv):
  del argv  # cli.parse_flags refuses positional arguments, with one line
  logging.set_verbosity(logging.INFO)
  if _DIST.value:
    from optical_jax.training import distributed  # pylint: disable=import-outside-toplevel

    distributed.initialize()
  import jax  # pylint: disable=import-outside-toplevel

  mesh = None
  if _SHARD.value:
    from optical_jax.training import sharding  # pylint: disable=import-outside-toplevel

    mesh = sharding.make_mesh() if jax.device_count() > 1 else None
  try:
    # One eval.py per output set: the lock is beside OUT (.OUT.lock), so the swap of the whole
    # set stays atomic; a second run is refused with one line before anything loads.
    with work_lock(_OUTPUT.value, "--output", active=jax.process_index() == 0):
      metrics = _run(mesh)
  except (ValueError, OSError) as e:  # OSError: a missing file, an output that cannot be written
    print(f"eval: error: {e}", file=sys.stderr)
    return 1
  for lang, r in metrics["languages"].items():
    print(
      lang,
      " ".join(f"{m} {v:.4f}" for m, v in r["mean"].items()),
      f"missing {len(r['missing_queries'])}",
    )
  return 0


def settings_from_flags() -> EvalSettings:
  """The evaluation's settings, from the flags."""
  ann = plaid = None
  if _INDEX.value == "plaid":
    plaid = PlaidConfig(
      num_centroids=_PLAID_CENTROIDS.value,
      nprobe=_PLAID_PROBE.value,
      centroid_threshold=_PLAID_THRESHOLD.value,
      ndocs=_PLAID_NDOCS.value,
    )
  elif _INDEX.value != "exact":
    ann = AnnConfig(
      kind=_INDEX.value, nlist=_NLIST.value, nprobe=_NPROBE.value, ef_search=_EF.value
    )
  return EvalSettings(
    langs=tuple(_LANGS.value) if _LANGS.value else None,
    ranker=_RANKER.value,
    k=_K.value,
    first_stage=_FIRST.value,
    batch_size=_BATCH.value,
    max_length=_MAXLEN.value,
    doc_max_length=_DOCLEN.value,
    cache_dir=_CACHE.value,
    dtype=_DTYPE.value,
    index=_INDEX.value,
    ann=ann,
    plaid=plaid,
    index_recall=_RECALL.value,
    measures=tuple(_MEASURES.value) if _MEASURES.value else None,
  )


def _run(mesh) -> dict:
  """``run_eval`` with the flags' values."""
  return run_eval(
    _QUERY.value, _DOC.value, _COLLECTION.value, _OUTPUT.value, settings_from_flags(), mesh=mesh
  )


if __name__ == "__main__":
  cli.run(main)  # a bad flag: one line, exit 2; eval's own errors: main's one line, exit 1
