"""The main job behind `python train.py`: distil (where a method trains), then evaluate.

Today the only method is ``zero_shot``: the encoder as loaded, evaluated by
bitext matching on held-out pairs. Distillation methods plug in here.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Dict

import ml_collections

from optical_jax.data.cldr import cldr_bitext, split_pairs
from optical_jax.encode import encode_texts
from optical_jax.evaluation.bitext import matching_accuracy
from optical_jax.loading import load_encoder

log = logging.getLogger(__name__)

METHODS = ("zero_shot",)


def load_demo_bitext(config: ml_collections.ConfigDict) -> Dict[str, dict]:
  """lang -> {"train": pairs, "test": pairs, "dropped_identical": n, ...} from the config."""
  if config.data.source != "cldr":
    raise ValueError(f"config.data.source={config.data.source!r}: only 'cldr' is available")
  out = {}
  for lang in [l.strip() for l in config.data.langs.split(",") if l.strip()]:
    bt = cldr_bitext(lang)
    train, test = split_pairs(bt.pairs, config.data.test_fraction, seed=config.seed)
    cap = config.data.max_pairs_per_lang
    if cap:  # a random subset (the split is a seeded permutation), same proportions
      n_test = int(round(cap * config.data.test_fraction))
      train, test = train[:cap - n_test], test[:n_test]
    out[lang] = dict(train=train, test=test, dropped_identical=bt.dropped_identical,
                     dropped_duplicate=bt.dropped_duplicate)
    log.info("%s: %d train / %d test pairs (%d identical to English and %d duplicates dropped)",
             lang, len(train), len(test), bt.dropped_identical, bt.dropped_duplicate)
  if not out:
    raise ValueError("config.data.langs is empty")
  return out


def evaluate_matching(model, bitext: Dict[str, dict], config) -> Dict[str, dict]:
  """Bitext-matching accuracy per language on the held-out pairs."""
  prefix = model.query_prefix if config.eval.prefix == "auto" else config.eval.prefix
  results = {}
  for lang, split in bitext.items():
    en = [e for e, _ in split["test"]]
    fo = [f for _, f in split["test"]]
    kw = dict(pooling=config.eval.pooling or None, prefix=prefix, batch_size=config.eval.batch_size,
              normalize=True, progress=False)
    acc = matching_accuracy(encode_texts(model, fo, **kw), encode_texts(model, en, **kw))
    results[lang] = acc
    log.info("%s: f2e %.3f  e2f %.3f  (n=%d)", lang, acc["f2e"], acc["e2f"], acc["n"])
  return results


def format_table(rows: Dict[str, Dict[str, dict]]) -> str:
  """Markdown table: one row per (method, language) of matching accuracy."""
  lines = ["| method | lang | n | foreign->English | English->foreign |", "|---|---|---|---|---|"]
  for method, per_lang in rows.items():
    for lang, r in per_lang.items():
      lines.append(f"| {method} | {lang} | {r['n']} | {r['f2e']:.3f} | {r['e2f']:.3f} |")
  return "\n".join(lines)


def write_json_atomic(path: Path, obj) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
  with os.fdopen(fd, "w", encoding="utf-8") as fh:
    json.dump(obj, fh, indent=2, ensure_ascii=False)
  os.replace(tmp, path)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the configured job and writes ``workdir/results.json``. Returns the results."""
  if config.method not in METHODS:
    raise ValueError(f"config.method={config.method!r}; available: {METHODS}")
  work = Path(workdir)
  work.mkdir(parents=True, exist_ok=True)
  (work / "config.json").write_text(config.to_json_best_effort(indent=2))
  start = time.time()
  bitext = load_demo_bitext(config)
  model = load_encoder(config.model, dtype=config.dtype)
  log.info("loaded %s (%s, %d layers, d=%d) in %.1fs", model.source, model.config.family,
           model.config.num_layers, model.config.hidden_size, time.time() - start)
  rows = {"zero_shot": evaluate_matching(model, bitext, config)}
  results = {
      "task": "bitext matching accuracy on held-out CLDR name pairs (test split)",
      "model": config.model, "results": rows,
      "pairs": {l: {"train": len(s["train"]), "test": len(s["test"]),
                    "dropped_identical": s["dropped_identical"],
                    "dropped_duplicate": s["dropped_duplicate"]} for l, s in bitext.items()},
      "seconds": round(time.time() - start, 1),
  }
  write_json_atomic(work / "results.json", results)
  (work / "results.md").write_text(format_table(rows) + "\n", encoding="utf-8")
  return results
