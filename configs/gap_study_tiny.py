"""The gap study in under 10 minutes on 2 CPU cores: 2 low- and 2 high-resource
languages, zero-shot vs one KD baseline vs OPTICAL, short distillation."""

from configs import gap_study


def get_config():
  config = gap_study.get_config()
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
