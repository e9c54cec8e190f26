"""Tiny config: a config's code path in seconds on a CPU (tests, laptops). Every tiny setting of
the project is here.

  python train.py --config=configs/tiny.py --config.model=/path/to/small_hf_dir
  python train.py --config=configs/tiny.py:tpu_pod --config.model=...   # the pod config, made tiny
  python train.py --config=configs/tiny.py:afriqa --config.model=SMALL_HF_DIR \\
      --config.data.shared_root=ROOT --workdir W
  python study.py --config=configs/tiny.py:gap_study --workdir W     # < 10 minutes on 2 CPUs
  python study.py --config=configs/tiny.py:afriqa_study --config.distill.model=SMALL_HF_DIR \\
      --config.distill.data.shared_root=ROOT --workdir W

The part after ':' names a config in configs/ (``BASES``; default: ``default``):

* ``default``, ``gpu``, ``tpu_pod`` (train.py): data, batch and step counts are shrunk; what makes
  it that config stays: dtype, remat, layer unrolling, mesh, token capacities and Sinkhorn
  settings. So ``tiny.py:tpu_pod`` and ``tiny.py:gpu`` check a pod or cluster config on 8 simulated
  CPU devices before a job is launched (tests/training/test_training.py). The encoder is the
  built-in random ``random:tiny`` (``optical_jax/loading/random_tiny.py``: no download, no torch);
  ``--config.model=DIR`` runs a small checkpoint instead.
* ``afriqa`` (train.py): configs/afriqa.py's code path (mixture, overlap guard, retrieval checks)
  on a small checkpoint (``--config.model``), a few steps, short texts. ``ROOT`` holds the shared
  corpora's layout (``../shared/data`` or a small copy made by the tests); the retrieval checks
  read the same root.
* ``gap_study`` (study.py): the gap study in under 10 minutes on 2 CPU cores: 2 low- and 2
  high-resource languages, zero-shot vs one KD baseline vs OPTICAL, short distillation.
* ``afriqa_study`` (study.py): the AfriQA study with ``afriqa``'s tiny runs (``config.distill``,
  the key every study nests its train.py config under), on the two tiny languages.
"""

import importlib


def _train(config):
  """A train.py config (default, gpu, tpu_pod) made tiny, on the random encoder."""
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


#: The query languages of each declared check made tiny.
TINY_EVAL_LANGS = {
  "afriqa": ("hau", "yor"),
  "flores_devtest": ("hau", "yor", "deu"),
  "tatoeba": ("swh",),
}


def _afriqa(config):
  """configs/afriqa.py made tiny (its model stays: pass a small checkpoint)."""
  config.data.mixture = "afriqa:train:hau, flores200:dev:hau+yor"  # two sources, two languages
  config.data.cap = 40
  config.data.test_fraction = 0.4  # at least 2 held-out pairs in every tiny language
  config.data.max_length = 32
  config.data.buckets = (16, 32)
  config.train.batch_size = 8  # divisible by 8 simulated devices
  config.train.num_steps = 4
  config.train.warmup_steps = 1
  config.train.learning_rate = 1e-3
  config.train.log_every = 2
  config.train.checkpoint_every = 2
  config.train.async_checkpointing = False
  config.ot.max_iterations = 50
  config.eval.batch_size = 8
  for e in config.evals.values():  # every declared check, on two or three languages
    e.langs = TINY_EVAL_LANGS[e.type]
    if "high" in e:
      e.high = ("deu",)
  config.retrieval.doc_max_length = 64
  config.retrieval.bootstrap_samples = 50
  return config


def _gap_study(config):
  """configs/gap_study.py made tiny."""
  config.methods = "zero_shot,kd_sentence,optical"  # one KD baseline
  config.low = "swa,som"  # two low-resource languages
  config.high = "deu,fra"  # two high-resource languages
  config.eval.doc_max_length = 128  # shorter documents
  config.eval.bootstrap_samples = 500
  config.distill.data.langs = "sw,so,de,fr"
  config.distill.data.max_pairs_per_lang = 200
  config.distill.train.num_steps = 20  # a few steps per method
  config.distill.train.warmup_steps = 5
  config.distill.train.learning_rate = 5e-5
  config.distill.train.checkpoint_every = 20
  return config


def _afriqa_study(config):
  """configs/afriqa_study.py made tiny: ``afriqa``'s runs, its two languages in the headline."""
  config.distill = _afriqa(config.distill)
  config.focus_langs = "hau,yor"  # the tiny runs' AfriQA languages
  config.bootstrap_samples = 50
  config.rankers = "dense"  # MaxSim re-encodes every passage per run: --config.rankers=dense,maxsim
  return config


#: The configs this can shrink, each with its shrinker.
SHRINK = {
  "default": _train,
  "gpu": _train,
  "tpu_pod": _train,
  "afriqa": _afriqa,
  "gap_study": _gap_study,
  "afriqa_study": _afriqa_study,
}
BASES = tuple(SHRINK)


def get_config(base: str = "default"):
  if base not in SHRINK:
    raise ValueError(f"configs/tiny.py:{base}: can shrink {', '.join(BASES)}")
  return SHRINK[base](importlib.import_module(f"configs.{base}").get_config())
