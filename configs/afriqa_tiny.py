"""configs/afriqa.py made tiny, for the tests and a laptop: its code path (mixture, overlap guard,
retrieval checks) on a small checkpoint, a few steps, short texts.

  python train.py --config=configs/afriqa_tiny.py --config.model=SMALL_HF_DIR \\
      --config.data.shared_root=ROOT --workdir W

``ROOT`` holds the shared corpora's layout (``../shared/data`` or a small copy made by the tests);
the retrieval checks read the same root.
"""

from configs import afriqa


def get_config():
  config = afriqa.get_config()
  config.data.mixture = "afriqa:train:hau, flores200:dev:hau+yor"  # two sources, two languages
  config.data.cap = 40
  config.data.test_fraction = (
    0.4  # at least 2 held-out pairs in every tiny language (fewer are refused)
  )
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
  config.retrieval.afriqa_langs = ("hau", "yor")
  config.retrieval.flores_langs = ("hau", "yor", "deu")
  config.retrieval.flores_high = ("deu",)
  config.retrieval.tatoeba_langs = ("swh",)
  config.retrieval.doc_max_length = 64
  config.retrieval.bootstrap_samples = 50
  return config
