"""Entry point: evaluate a query-side model against a document-side model.

  python eval.py --query_model=WORKDIR_OR_MODEL [--doc_model=MODEL] [--config=configs/default.py]
                 [--config.data.source=tico19 --config.data.path=... --config.data.langs=sw,so]
                 [--output=results.json]

Today it reports bitext-matching accuracy on the config's held-out test split
(the retrieval evaluation of issue 4 plugs in here). ``--doc_model`` defaults
to the teacher recorded in a student's work directory, else the query model.
"""

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from optical_jax import trainer
from optical_jax.data.sources import load_splits
from optical_jax.loading import load_encoder

_QUERY = flags.DEFINE_string("query_model", None, "Student work dir or any model name/path.",
                             required=True)
_DOC = flags.DEFINE_string("doc_model", None, "Document-side model (default: the student's teacher).")
_OUTPUT = flags.DEFINE_string("output", None, "Write the results as JSON here.")
_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Data and eval settings.",
                                          lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  config = _CONFIG.value
  query = load_encoder(_QUERY.value, dtype=config.dtype)
  doc_name = _DOC.value or query.meta.get("teacher") or _QUERY.value
  doc = load_encoder(doc_name, dtype=config.dtype)
  splits = load_splits(config)
  rows = {"query_model": trainer.evaluate_matching(query, doc, splits, config)}
  print(trainer.format_table(rows))
  result = {"query_model": _QUERY.value, "doc_model": doc_name, "results": rows["query_model"],
            "splits": {lang: s["info"] for lang, s in splits.items()}}
  if _OUTPUT.value:
    trainer.write_json_atomic(Path(_OUTPUT.value), result)
  return 0


if __name__ == "__main__":
  try:
    app.run(main)
  except (ValueError, FileNotFoundError) as e:
    print(f"eval: error: {e}", file=sys.stderr)
    sys.exit(1)
