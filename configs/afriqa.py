"""The recommended AfriQA student: distil multilingual-e5-small on query-style and sentence
bitext for the AfriQA languages, then check it on AfriQA dev, FLORES-200 devtest and Tatoeba.

  python train.py --config=configs/afriqa.py --workdir W
  python train.py --config=configs/afriqa.py --workdir W --config.method=kd_sentence   # a baseline

The choices and the dev-set ablations behind them: docs/RESEARCH.md. Test languages and splits
(data/afriqa.py): AfriQA dev for bem hau ibo kin twi zul, AfriQA train for yor (it has no dev
split; its train questions are never used as bitext). Bitext licenses are in each run's
bitext_manifest.json (MAFAND-MT and MENYO-20k are CC BY-NC 4.0: keep results non-commercial).
"""

from configs import default

#: AfriQA languages whose train questions are bitext (Yoruba's are its test).
QUESTION_LANGS = "bem+hau+ibo+kin+twi+zul"
#: Languages with news/sentence bitext in the shared corpora.
SENTENCE_LANGS = "hau+ibo+kin+yor+zul"


def get_config():
  config = default.get_config()
  # See configs/default.py for every field; only what differs is set here.
  config.method = "optical"
  config.data.source = "mixture"
  # Query-style bitext first (AfriQA train questions, CIRAL topics), then FLORES-200 dev and
  # MAFAND-MT / MENYO-20k news sentences; spec order resolves duplicates (data/mixture.py).
  config.data.mixture = (f"afriqa:train:{QUESTION_LANGS}, ciral:all:hau+som+swa+yor, "
                         f"flores200:dev:{SENTENCE_LANGS}+twi+bem+swa+som, "
                         f"mafand:train+dev:{SENTENCE_LANGS}, menyo20k:train:yor")
  # Pairs per (corpus, language), a seeded subset: keeps MAFAND's 30k Swahili from dominating.
  config.data.cap = 3000
  # Temperature exponent over languages (1 = natural proportions).
  config.data.alpha = 1.0
  # Fraction of (English, English) pairs that anchor the student's English side.
  config.data.english_pairs = 0.0
  # Held-out pairs per language for the bitext-matching table (never trained on).
  config.data.test_fraction = 0.02
  # Questions and news sentences are short: 64 tokens covers all but a few.
  config.data.max_length = 64
  config.data.buckets = (16, 32, 64)
  # Bitext repeating any AfriQA / FLORES devtest / Tatoeba text is dropped and counted in the
  # manifest (26 AfriQA train questions repeat a dev question or its English; docs/RESEARCH.md).
  config.data.overlap = "drop"
  config.train.num_steps = 600
  config.train.learning_rate = 5e-5
  config.train.warmup_steps = 30
  config.train.checkpoint_every = 200
  config.train.tensorboard = False
  config.retrieval.collections = "afriqa,flores_devtest,tatoeba"
  config.retrieval.rankers = "dense"
  return config
