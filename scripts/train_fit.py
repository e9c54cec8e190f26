"""Diagnosis for docs/RESEARCH.md: how much of the oracle gap does a student close on the very
questions it was trained on? (Fit, against generalisation to the dev questions.)

  python scripts/train_fit.py RUN_DIR [RUN_DIR ...]

Builds a second AfriQA collection with the same passage pool as the dev collection but the
*train* split questions of bem hau ibo kin twi zul (native, and their English translations) as
queries, and ranks it with zero-shot multilingual-e5-small and with each run's student (dense
ranker; documents always by the zero-shot model, as in dev_eval). Prints, per language, the
native MAP of zero-shot and student, the English MAP, and the fraction of the gap closed; the
training pairs are these questions (minus those the overlap guard dropped), so this is the
method's ceiling on its own data. For a diagnosis only: nothing here is a held-out number.
"""

import dataclasses
import json
import sys
from pathlib import Path

import ml_collections

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optical_jax import dev_eval  # noqa: E402
from optical_jax.data import afriqa  # noqa: E402
from optical_jax.evaluation import oracle_gap  # noqa: E402
from optical_jax.testsets import afriqa_passages, registry  # noqa: E402
from optical_jax.testsets.collection_format import Collection  # noqa: E402
from optical_jax.loading import load_encoder  # noqa: E402
from optical_jax.training.student import interpolate  # noqa: E402

LANGS = ("bem", "hau", "ibo", "kin", "twi", "zul")


def train_collection(root):
  dev = afriqa_passages.afriqa_collection(root, list(LANGS))
  queries, qrels = {l: {} for l in LANGS}, {}
  queries["en"] = {}
  for lang in LANGS:
    rows, _ = afriqa.read_afriqa(root, lang, "train")
    for r in rows:
      if not r.context:
        continue
      queries[lang][r.qid] = r.native
      queries["en"][r.qid + afriqa.ENGLISH_SUFFIX] = r.english
      doc = afriqa_passages.doc_id_of(r.title, r.context)
      qrels[r.qid] = {doc: 1}
      qrels[r.qid + afriqa.ENGLISH_SUFFIX] = {doc: 1}
  return Collection(
    name="afriqa_trainq",
    doc_ids=dev.doc_ids,
    docs=dev.docs,
    queries=queries,
    qrels=qrels,
    meta={"counts": {l: len(queries[l]) for l in queries}},
  )


def main(runs, alpha=None):
  config = ml_collections.ConfigDict(json.loads((Path(runs[0]) / "config.json").read_text()))
  coll = train_collection(registry.root(config, "afriqa"))
  teacher = load_encoder(config.model, dtype=config.dtype)
  langs = list(LANGS) + ["en"]
  out = Path("/tmp/train_fit")
  zs = dev_eval.zero_shot(teacher, coll, langs, "dense", config, out / "zs")
  qids = {l: sorted(coll.queries[l]) for l in LANGS}
  english = oracle_gap.english_by_native(zs["per_query"]["en"], qids, afriqa.ENGLISH_SUFFIX)
  for run in map(Path, runs):
    student = load_encoder(str(run), dtype=config.dtype)
    if alpha is not None:
      student = dataclasses.replace(
        student, params=interpolate(teacher.params, student.params, alpha)
      )
    st = dev_eval._run(student, teacher, coll, list(LANGS), "dense", config, out / run.name)
    c = oracle_gap.closed_fraction(
      {l: st["per_query"][l] for l in LANGS},
      {l: zs["per_query"][l] for l in LANGS},
      english,
      qids,
      samples=200,
    )
    print(f"\n{run} (alpha {alpha}): train questions, closed pooled {c['closed_pooled']:.3f}")
    print("| lang | n | zero-shot | student | English | closed |")
    print("|---|---|---|---|---|---|")
    for l in LANGS:
      x = c["langs"][l]
      print(
        f"| {l} | {len(qids[l])} | {x['native_zero_shot']:.3f} | {x['native_method']:.3f} | "
        f"{x['english_zero_shot']:.3f} | {x.get('closed', float('nan')):+.2f} |"
      )


if __name__ == "__main__":
  args = sys.argv[1:]
  a = None
  if args and args[0].startswith("--alpha="):
    a = float(args.pop(0).split("=")[1])
  main(args, a)
