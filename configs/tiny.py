"""Tiny config: a config's code path in seconds on a CPU (tests, laptops).

  python train.py --config=configs/tiny.py --config.model=/path/to/small_hf_dir
  python train.py --config=configs/tiny.py:tpu_pod --config.model=...   # the pod config, made tiny

The part after ':' names a train.py config in configs/ (``BASES``; default: ``default``). Its
data, batch and step counts are shrunk; what makes it that config stays: dtype, remat, layer
unrolling, mesh, token capacities and Sinkhorn settings. So ``tiny.py:tpu_pod`` and ``tiny.py:gpu`` check a pod or
cluster config on 8 simulated CPU devices before a job is launched (tests/training/test_training.py).
The encoder is the built-in random ``random:tiny`` (``optical_jax/loading/random_tiny.py``: no
download, no torch); ``--config.model=DIR`` runs a small checkpoint instead.
"""

import importlib


#: The train.py configs this can shrink (the study's have another layout: gap_study_tiny.py).
BASES = ("default", "gpu", "tpu_pod")


def get_config(base: str = "default"):
  if base not in BASES:
    raise ValueError(
      f"configs/tiny.py:{base}: can shrink {', '.join(BASES)}; for the gap study use "
      "configs/gap_study_tiny.py"
    )
  config = importlib.import_module(f"configs.{base}").get_config()
  config.distributed = False  # one process; jax.distributed is for real multi-host jobs
  config.model = "random:tiny"  # a built-in random 2-layer encoder, byte-level tokens
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
