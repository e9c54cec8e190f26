"""Tiny config: the default's code path in seconds on a CPU (tests, laptops).

Pair it with a small checkpoint: --config.model=/path/to/small_hf_dir.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.langs = "sw,de"  # one low-, one high-resource language
  config.data.max_pairs_per_lang = 40  # 28 train / 12 test pairs per language
  config.data.max_length = 32  # short sequences
  config.data.buckets = (16, 32)  # two compiled shapes
  config.train.batch_size = 8  # divisible by 8 simulated devices
  config.train.num_steps = 6  # a few steps
  config.train.warmup_steps = 2
  config.train.learning_rate = 1e-3
  config.train.log_every = 2
  config.train.checkpoint_every = 3
  config.train.async_checkpointing = False
  config.ot.max_iterations = 50
  config.eval.batch_size = 8
  return config
