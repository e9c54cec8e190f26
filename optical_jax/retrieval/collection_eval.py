"""Cross-lingual retrieval evaluation: documents by the document-side (teacher)
model, queries by the query-side (student) model, exact search, TREC runs,
trec_eval-identical metrics.

Used by ``eval.py`` and ``study.py``. Writes, under ``out_dir``:
``run.<lang>.trec`` (6-column TREC runs, tagged with the query model's name) and
``per_query.<lang>.tsv`` (the ``trec_eval -q`` view, ``evaluation/per_query.py``), and returns
per-language :class:`optical_jax.evaluation.metrics.EvalResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from pathlib import Path
from typing import Dict, Optional, Sequence

import jax

from optical_jax.encode import check_token_limit
from optical_jax.errors import UsageError
from optical_jax.testsets.collection_format import Collection
from optical_jax.evaluation.metrics import DEFAULT_MEASURES, check_measures, evaluate
from optical_jax.evaluation.per_query import write_per_query
from optical_jax.testsets.trec_files import read_trec_run, run_tag, write_trec_run
from optical_jax.io import atomic_write_text, check_output_folder, write_json_atomic
from optical_jax.loading.load import LoadedEncoder
from optical_jax.retrieval.ann import (
  INDEX_KINDS,
  AnnConfig,
  ann_search,
  build_index,
  recall_against,
)
from optical_jax.retrieval.eval_settings import EvalSettings
from optical_jax.retrieval.output_set import staging_dir as _staging_dir, swap_in as _swap_in
from optical_jax.retrieval.index import concat_reps, encode, encode_cached, vector_width
from optical_jax.retrieval.plaid import PlaidConfig, index_for, plaid_search
from optical_jax.retrieval.rerank import candidates_from_run, rerank
from optical_jax.retrieval.search import search, to_run
from optical_jax.retrieval.sharded_search import search_sharded


log = logging.getLogger(__name__)

#: ``exact`` (search.py), the FAISS indexes of the dense ranker (ann.py) and MaxSim's PLAID-style
#: first stage (plaid.py).
INDEXES = INDEX_KINDS + ("plaid",)


def _judged_for(collection: Collection, lang: str) -> dict:
  """The qrels that count for ``lang``: its own queries, plus judged queries that
  appear in no language's query file (those are missing from the run: they score 0
  and are counted, never dropped). Queries of other languages only are excluded."""
  mine = set(collection.queries[lang])
  anywhere = set(collection.unloaded_query_ids).union(
    *(set(q) for q in collection.queries.values())
  )
  return {q: rel for q, rel in collection.qrels.items() if q in mine or q not in anywhere}


#: Rankers ``evaluate_collection`` and ``eval.py`` take; ``auto`` is :func:`default_ranker`.
RANKER_CHOICES = ("auto", "dense", "maxsim")


def default_ranker(doc_model: LoadedEncoder, query_model: Optional[LoadedEncoder] = None) -> str:
  """The ranker a model was made for: the one an exported student records (``ranker`` in its
  ``optical_jax.json``: ``"maxsim"`` for a student trained with
  ``distill.contrastive_ranker='maxsim'``, else ``"dense"``), the query model's first, then the
  document model's; for a model without a record, ``"maxsim"`` when the document model has a
  late-interaction head (a teacher trained by train.py's teacher stage), else ``"dense"``: a
  retriever taken as is (e5) is trained for its pooled vectors, and MaxSim over its raw token
  states scores lower and costs far more."""
  for model in (query_model, doc_model):
    recorded = getattr(model, "meta", None) or {}
    if recorded.get("ranker") in ("dense", "maxsim"):
      return recorded["ranker"]
  return "maxsim" if doc_model.head is not None else "dense"


def resolve_ranker(
  ranker: str, doc_model: LoadedEncoder, query_model: Optional[LoadedEncoder] = None
) -> str:
  if ranker not in RANKER_CHOICES:
    raise ValueError(f"ranker {ranker!r} not in {RANKER_CHOICES}")
  return default_ranker(doc_model, query_model) if ranker == "auto" else ranker


def check_request(
  collection: Collection,
  langs: Sequence[str],
  k: int,
  first_stage: Optional[str],
  ranker: str = "auto",
  index: str = "exact",
) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Refuses, before any encoding, what would give empty or meaningless runs: k < 1, a language
  without queries, one whose judged queries have no relevant document (every metric would be 0),
  a first-stage path without ``{lang}`` for several languages, a first-stage run with nothing of
  this collection to re-rank, and a FAISS index with MaxSim or a first stage. Returns each
  language's first-stage run (its own queries only; ``{}`` without a first stage)."""
  if k < 1:
    raise UsageError(f"k={k}: the run depth must be at least 1")
  if index not in INDEXES:
    raise UsageError(f"index {index!r}: expected one of {INDEXES}")
  if index == "plaid" and (ranker != "maxsim" or first_stage):
    raise UsageError(
      "index 'plaid' is a first stage over token vectors: use it with --ranker maxsim and "
      "without first_stage"
    )
  if index not in ("exact", "plaid") and (ranker == "maxsim" or first_stage):
    raise UsageError(
      f"index {index!r} searches the dense ranker's vectors; for MaxSim use --index plaid, or "
      "write an approximate dense run first and re-rank it with first_stage"
    )
  if first_stage and len(langs) > 1 and "{lang}" not in first_stage:
    raise UsageError(
      f"first stage {first_stage!r} has no '{{lang}}' but {len(langs)} languages "
      "are evaluated: each would re-rank the same run"
    )
  runs = {}
  for lang in langs:
    if lang not in collection.queries:
      raise UsageError(
        f"{collection.name}: no queries for language {lang!r}; it has {sorted(collection.queries)}"
      )
    mine = collection.queries[lang]
    if not mine:
      raise UsageError(f"{collection.name}: the query file of language {lang!r} has no queries")
    if not any(q in collection.qrels for q in mine):
      raise UsageError(
        f"{collection.name}: none of the {len(mine)} queries of language "
        f"{lang!r} is judged in the qrels (other query ids?): every metric would "
        "be 0"
      )
    judged = _judged_for(collection, lang)
    if not any(r > 0 for rels in judged.values() for r in rels.values()):
      raise UsageError(
        f"{collection.name}: no query of language {lang!r} has a relevant "
        f"document in the qrels ({len(judged)} judged queries, all relevance 0): "
        "every metric would be 0"
      )
    if first_stage:
      runs[lang] = _first_stage_run(
        first_stage.format(lang=lang), collection.queries[lang], collection
      )
  return runs


def _first_stage_run(path: str, qids, collection: Collection) -> Dict[str, Dict[str, float]]:
  """The part of a first-stage run for ``qids``; refuses one with nothing to re-rank and says
  how many of its documents the collection lacks (those cannot be re-ranked)."""
  wanted = set(qids)
  mine = {q: docs for q, docs in read_trec_run(path).items() if q in wanted}
  pairs = sum(len(d) for d in mine.values())
  if not pairs:
    raise UsageError(
      f"first stage {path}: no documents for any of the {len(wanted)} queries of "
      "this language (empty run, or other query ids)"
    )
  known = set(collection.doc_ids)
  unknown = sum(1 for docs in mine.values() for d in docs if d not in known)
  if unknown == pairs:
    raise UsageError(
      f"first stage {path}: none of its {pairs} documents is in collection {collection.name}"
    )
  if unknown:
    log.warning(
      "first stage %s: %d of its %d documents are not in collection %s and cannot be re-ranked",
      path,
      unknown,
      pairs,
      collection.name,
    )
  return mine


def evaluate_collection(
  query_model: LoadedEncoder,
  doc_model: LoadedEncoder,
  collection: Collection,
  langs: Sequence[str],
  out_dir,
  settings: Optional[EvalSettings] = None,
  *,
  tag: Optional[str] = None,
  progress: bool = True,
  recall_into: Optional[Dict[str, float]] = None,
  mesh=None,
  **fields,
) -> Dict[str, object]:
  """Retrieves for every language of ``langs`` and scores the runs.

  Args:
    settings: how (:class:`EvalSettings`: ranker, k, first stage, batch size, token limits, cache
      folder, index, measures; its ``langs`` and ``dtype`` are not used here); ``fields``: some
      of its fields instead or on top (``ranker="dense", k=100``). ``cache_dir`` None: no cache.
    tag: the runs' tag (TREC column 6); default the query model's source, whitespace removed.
    recall_into: with a FAISS index, a dict to fill with each language's recall@k of the FAISS
      run against exact search (which then also runs); None = not measured.
    mesh: exact search splits the documents over this mesh's devices (and hosts) when it has
      more than one (``retrieval/sharded_search.py``; the same runs as one device).
  Returns lang -> EvalResult.
  """
  s = dataclasses.replace(settings or EvalSettings(), **fields)
  ranker, k, first_stage, index = s.ranker, s.k, s.first_stage, s.index
  batch_size, max_length, doc_max_length = s.batch_size, s.max_length, s.doc_max_length
  measures = s.measures or DEFAULT_MEASURES
  ranker = resolve_ranker(ranker, doc_model, query_model)
  first_runs = check_request(collection, langs, k, first_stage, ranker, index)
  check_token_limit("max_length", max_length)
  check_token_limit("doc_max_length", doc_max_length)
  widths = {
    side: vector_width(m, ranker) for side, m in (("query", query_model), ("document", doc_model))
  }
  if widths["query"] != widths["document"]:
    raise UsageError(
      f"the query model's {ranker} vectors have width {widths['query']} and the "
      f"document model's {widths['document']}: the two cannot be compared; give "
      "a document model of the query model's space (the student's teacher)"
    )
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  doc_texts = [collection.docs[d] for d in collection.doc_ids]
  docs = encode_cached(
    doc_model,
    doc_texts,
    ranker,
    s.cache_dir,
    prefix=doc_model.doc_prefix,
    max_length=doc_max_length,
    batch_size=batch_size,
    progress=progress,
    desc="documents",
  )
  exact_search = search
  if mesh is not None and mesh.devices.size > 1:
    exact_search = functools.partial(search_sharded, mesh=mesh)
  faiss_index = None
  if index not in ("exact", "plaid"):
    faiss_index = build_index(docs.vectors, dataclasses.replace(s.ann or AnnConfig(), kind=index))
  encoded = {}
  for lang in langs:
    qids = list(collection.queries[lang])
    texts = [collection.queries[lang][q] for q in qids]
    encoded[lang] = (
      qids,
      encode(
        query_model,
        texts,
        ranker,
        prefix=query_model.query_prefix,
        max_length=max_length,
        batch_size=batch_size,
        progress=progress,
        desc=f"queries {lang}",
      ),
    )
  together = {}  # exact search: every language's queries in one pass over the documents
  counts = {lang: len(qids) for lang, (qids, _) in encoded.items()}
  if index == "plaid":
    together = _plaid_runs(docs, encoded, counts, s, exact_search, recall_into, progress)
  elif not first_stage and faiss_index is None and len(langs) > 1:
    together = _split_results(
      exact_search(concat_reps([r for _, r in encoded.values()]), docs, k=k, progress=progress),
      counts,
    )
  results = {}
  for lang in langs:
    qids, queries = encoded[lang]
    if first_stage:  # only the first stage's documents are scored
      candidates = candidates_from_run(first_runs[lang], qids, collection.doc_ids)
      scores, idx = rerank(queries, docs, candidates, k=k, progress=progress)
    elif faiss_index is None:
      scores, idx = (
        together[lang] if together else exact_search(queries, docs, k=k, progress=progress)
      )
    else:
      scores, idx = ann_search(faiss_index, queries.vectors, k)
      if recall_into is not None:
        _, exact = exact_search(queries, docs, k=k, progress=progress)
        recall_into[lang] = recall_against(idx, exact)
        log.info(
          "%s: %s index recall@%d against exact search %.4f", lang, index, k, recall_into[lang]
        )
    run = to_run(qids, collection.doc_ids, scores, idx)
    write_trec_run(out_dir / f"run.{lang}.trec", run, tag or run_tag(query_model.source))
    res = evaluate(run, _judged_for(collection, lang), measures, set(collection.doc_ids))
    write_per_query(out_dir / f"per_query.{lang}.tsv", res)
    results[lang] = res
    log.info(
      "%s: %s (%d queries, %d missing)",
      lang,
      " ".join(f"{m} {v:.4f}" for m, v in res.mean.items()),
      res.num_queries_scored,
      len(res.missing_queries),
    )
  return results


def _plaid_runs(docs, encoded, counts, s: EvalSettings, exact_search, recall_into, progress):
  """Every language's queries through the PLAID index of ``docs`` (built or reused beside the
  token store) -> per language (scores, indices); with ``recall_into``, each language's
  recall@k against exact search (which then also runs) and the candidate counts."""
  cfg = s.plaid or PlaidConfig()
  index = index_for(docs, cfg, progress)
  queries = concat_reps([r for _, r in encoded.values()])
  scores, idx, stats = plaid_search(index, queries, docs, s.k, cfg, progress)
  log.info(
    "PLAID: %d centroids; per query %.0f candidates from the centroids, %.0f scored exactly",
    index.meta["num_centroids"],
    stats["candidates_stage1"],
    stats["candidates_exact"],
  )
  found = _split_results((scores, idx), counts)
  if recall_into is not None:
    exact = _split_results(exact_search(queries, docs, k=s.k, progress=progress), counts)
    for lang in counts:
      recall_into[lang] = recall_against(found[lang][1], exact[lang][1])
      log.info("%s: plaid recall@%d against exact search %.4f", lang, s.k, recall_into[lang])
  return found


def _split_results(found, counts: Dict[str, int]) -> Dict[str, tuple]:
  """(scores, indices) of the concatenated queries -> per language, in ``counts``' order."""
  out, start = {}, 0
  for lang, n in counts.items():
    out[lang] = found[0][start : start + n], found[1][start : start + n]
    start += n
  return out


def check_document_model(name: Optional[str]) -> None:
  """Refuses a query-only student (its export's ``query_only``, training/student.py) as the
  document model: its queries are trained to meet its teacher's documents, and its own document
  vectors are worse than the teacher's (Tatoeba English->foreign falls below zero-shot,
  docs/RESEARCH.md). ``None`` (the default: the student's teacher) passes."""
  from optical_jax.loading.load import export_meta  # pylint: disable=import-outside-toplevel

  meta = export_meta(name) if name else {}
  if meta.get("query_only"):
    raise UsageError(
      f"--doc_model {name}: a query-only student (distilled so that its queries meet the documents "
      f"of its teacher {meta.get('teacher')}; as a document encoder it is worse than the teacher, "
      "docs/RESEARCH.md); leave --doc_model out to encode the documents with the teacher"
    )


def run_eval(
  query_model_name: str,
  doc_model_name: str | None,
  collection_path: str,
  output: str,
  settings: Optional[EvalSettings] = None,
  *,
  mesh=None,
  **fields,
) -> dict:
  """What ``eval.py`` does: load, retrieve, score; write runs, ``metrics.json``, ``report.md``.

  The set is written into a staging folder beside ``output`` and swapped in whole at the end:
  a run that fails leaves the previous set (if any) as it was.

  ``doc_model_name`` defaults to the teacher recorded in a student's work
  directory, else the query model itself. ``settings``: :class:`EvalSettings` (default its
  defaults), ``fields`` some of its fields instead or on top (``k=10, langs=["swa"]``);
  ``ranker="auto"``: :func:`default_ranker` of the two models (the one used is written to
  ``metrics.json``); ``measures`` are checked first; ``cache_dir`` None: ``output/cache``.
  ``mesh``: exact search over its devices (:func:`evaluate_collection`). Runs are tagged with
  ``query_model_name``.
  """
  s = dataclasses.replace(settings or EvalSettings(), **fields)
  s = dataclasses.replace(s, measures=check_measures(s.measures or ()))  # before anything is read
  if s.ranker not in RANKER_CHOICES:
    raise UsageError(f"ranker {s.ranker!r} not in {RANKER_CHOICES}")
  from optical_jax.testsets.registry import load_collection  # pylint: disable=import-outside-toplevel

  collection = load_collection(collection_path, langs=list(s.langs) if s.langs else None)
  langs = list(s.langs) if s.langs else sorted(collection.queries)
  # Before any model loads (evaluate_collection repeats it, with the ranker resolved).
  check_request(collection, langs, s.k, s.first_stage, s.ranker, s.index)
  check_token_limit("max_length", s.max_length)
  check_token_limit("doc_max_length", s.doc_max_length)
  if s.batch_size < 1:
    raise UsageError(f"--batch_size={s.batch_size}: must be >= 1")
  check_document_model(doc_model_name)
  if s.cache_dir is not None:  # the default, OUT/cache, is made with the output set
    check_output_folder(s.cache_dir, "--cache_dir")
  out = Path(output)
  # Under jax.distributed every process searches its share of the documents; process 0 writes.
  process = jax.process_index()
  staging = _staging_dir(out, process)  # also proves the output's folder is writable
  try:
    metrics = _run_eval_into(
      staging, out, query_model_name, doc_model_name, collection, collection_path, langs, s, mesh
    )
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)  # the previous set, if any, stays as it was
    raise
  if process:
    shutil.rmtree(staging, ignore_errors=True)
  else:
    _swap_in(staging, out, keep_cache=s.cache_dir is None)
  return metrics


def _run_eval_into(
  staging: Path,
  out: Path,
  query_model_name: str,
  doc_model_name: Optional[str],
  collection: Collection,
  collection_path: str,
  langs: Sequence[str],
  s: EvalSettings,
  mesh,
) -> dict:
  """run_eval's work, writing the output set into ``staging`` (cache: ``out/cache`` unless
  given)."""
  from optical_jax.loading import load_encoder  # pylint: disable=import-outside-toplevel

  query_model = load_encoder(query_model_name, dtype=s.dtype)
  doc_name = doc_model_name or query_model.meta.get("teacher") or query_model_name
  doc_model = query_model if doc_name == query_model_name else load_encoder(doc_name, dtype=s.dtype)
  ranker = resolve_ranker(s.ranker, doc_model, query_model)
  log.info("ranker %s", ranker)
  k, first_stage, index = s.k, s.first_stage, s.index
  recall = {} if s.index_recall and index != "exact" else None
  results = evaluate_collection(
    query_model,
    doc_model,
    collection,
    langs,
    staging,
    dataclasses.replace(s, ranker=ranker, cache_dir=s.cache_dir or (out / "cache")),
    recall_into=recall,
    mesh=mesh,
    tag=run_tag(query_model_name),
  )
  metrics = {
    "query_model": query_model_name,
    "doc_model": doc_name,
    "collection": str(collection_path),
    "collection_meta": collection.meta,
    "ranker": ranker,
    "k": k,
    "first_stage": first_stage,
    "index": index,
    "index_settings": (
      dataclasses.asdict(s.plaid or PlaidConfig())
      if index == "plaid"
      else dataclasses.asdict(dataclasses.replace(s.ann or AnnConfig(), kind=index))
      if index != "exact"
      else None
    ),
    "index_recall_against_exact": recall,
    "search_devices": int(mesh.devices.size) if mesh is not None else 1,
    "semantics": "trec_eval -c: queries in the qrels but missing from a run score 0 and count "
    "in the mean (ir_measures, pytrec_eval backend)",
    "languages": {
      lang: {
        "mean": r.mean,
        "queries_scored": r.num_queries_scored,
        "missing_queries": list(r.missing_queries),
        "run_queries_not_in_qrels": r.extra_queries,
        "run_docs_not_in_collection": r.unknown_docs,
      }
      for lang, r in results.items()
    },
  }
  write_json_atomic(staging / "metrics.json", metrics)
  measures = list(next(iter(results.values())).mean) if results else []
  lines = [
    f"# Retrieval evaluation: {query_model_name}",
    "",
    f"Queries by `{query_model_name}`, documents by `{doc_name}`; collection "
    f"`{collection_path}` ({collection.meta.get('description', 'no description')}); "
    f"ranker {ranker}, depth {k}. {metrics['semantics']}.",
    "",
    "| lang | " + " | ".join(measures) + " | queries in mean | missing from run | "
    "run docs not in collection |",
    "|---|" + "---|" * (len(measures) + 3),
  ]
  for lang, r in results.items():
    lines.append(
      f"| {lang} | "
      + " | ".join(f"{r.mean[m]:.4f}" for m in measures)
      + f" | {r.num_queries_scored} | {len(r.missing_queries)} | {r.unknown_docs} |"
    )
  atomic_write_text(staging / "report.md", "\n".join(lines) + "\n")
  return metrics
