"""Tiny config: the default's code path on two languages and few pairs (CPU, seconds).

Pair it with a small checkpoint for tests: --config.model=/tmp/small_hf_dir.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.langs = "sw,de"  # one low-, one high-resource language
  config.data.max_pairs_per_lang = 40  # few pairs per language
  config.eval.batch_size = 8  # small batches
  return config
