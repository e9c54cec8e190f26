"""Diagnosis for docs/RESEARCH.md: does a student gain on AfriQA questions whose words its bitext
covered, and only there?

  python scripts/coverage.py RUN_DIR [RUN_DIR ...]

For each finished train.py run (configs/afriqa.py or a variant): rebuild its training bitext from
its config.json (data/sources.py, same seed) and compute, for every AfriQA test question, the share
of its words (data/overlap.py's ``words``: normalised, punctuation dropped) that occur on the
foreign side of the training pairs (and, printed as a summary, the same for the model's subword
tokens, prefix and special tokens excluded). Then print, per coverage bin, the questions'
zero-shot native MAP, English MAP and the student's gain (MAP, mean over questions; trec_eval -c),
pooled over the run's AfriQA languages.
"""

import json
import sys
from pathlib import Path

import ml_collections
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optical_jax.data.afriqa import ENGLISH_SUFFIX  # noqa: E402
from optical_jax.data.overlap import words  # noqa: E402
from optical_jax.data.sources import load_splits  # noqa: E402
from optical_jax.loading import load_encoder  # noqa: E402
from optical_jax.testsets import registry  # noqa: E402

BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.01)


def main(run_dirs):
  for run in map(Path, run_dirs):
    config = ml_collections.ConfigDict(json.loads((run / "config.json").read_text()))
    model = load_encoder(config.model)
    tok = model.tokenizer
    splits = load_splits(config)
    seen, seen_words = set(), set()
    for lang, s in splits.items():
      ids, _ = tok.encode_ids([f for _, f in s["train"]], 512, "")
      for x in ids:
        seen.update(x)
      for _, f in s["train"]:
        seen_words.update(words(f))
    stored = json.loads((run / "retrieval" / "afriqa.dense.json").read_text())
    coll, langs, _ = registry.load_dev_collection("afriqa", config)
    special = set(tok.encode_ids([""], 8, "")[0][0])
    rows = []
    for lang in langs:
      qids = sorted(stored["per_query"]["zero_shot"][lang])
      ids, _ = tok.encode_ids([coll.queries[lang][q] for q in qids], 512, "")
      for q, x in zip(qids, ids):
        toks = [t for t in x if t not in special]
        sub = np.mean([t in seen for t in toks]) if toks else 0.0
        ws = words(coll.queries[lang][q])
        cov = np.mean([w in seen_words for w in ws]) if ws else 0.0
        zs = stored["per_query"]["zero_shot"][lang][q]
        st = stored["per_query"]["student"][lang][q]
        en = stored["per_query"]["zero_shot"]["en"].get(q + ENGLISH_SUFFIX, 0.0)
        rows.append((lang, cov, zs, en, st, sub))
    cov = np.array([r[1] for r in rows])
    print(
      f"\n{run}: {len(rows)} questions; mean word coverage {cov.mean():.3f}, mean subword "
      f"coverage {np.mean([r[5] for r in rows]):.3f}"
    )
    print("| coverage | questions | zero-shot native | English | student | gain | gap closed |")
    print("|---|---|---|---|---|---|---|")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
      sel = [r for r in rows if lo <= r[1] < hi]
      if not sel:
        continue
      z, e, s = (np.mean([r[i] for r in sel]) for i in (2, 3, 4))
      name = "1 (all seen)" if lo == 1.0 else f"[{lo:.2f}, {hi:.2f})"
      print(
        f"| {name} | {len(sel)} | {z:.3f} | "
        f"{e:.3f} | {s:.3f} | {s - z:+.3f} | {(s - z) / (e - z) if e > z else float('nan'):+.2f} |"
      )
    r = np.corrcoef(cov, [x[4] - x[2] for x in rows])[0, 1]
    print(f"Pearson r(coverage, gain) = {r:+.3f}")


if __name__ == "__main__":
  main(sys.argv[1:])
