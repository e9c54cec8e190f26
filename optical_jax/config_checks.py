"""One check of a train.py config before any data or model is read (``validate``).

Every rule names the field, the value and what is expected; all violations are reported at once,
as one :class:`optical_jax.errors.UsageError`. train.py runs it first; the studies run it for
every run they would train, before the first one starts.
"""

from __future__ import annotations

from typing import List

from optical_jax.errors import UsageError

DTYPES = ("float32", "bfloat16")


def _problems(config) -> List[str]:
  # pylint: disable=import-outside-toplevel
  from optical_jax.models.scoring import RANKERS
  from optical_jax.testsets import registry  # pylint: disable=import-outside-toplevel
  from optical_jax.testsets.registry import DEV_CHECKS, parse_names
  from optical_jax.losses.objectives import OBJECTIVES, DistillSpec

  METHODS = ("zero_shot",) + OBJECTIVES  # pylint: disable=invalid-name  # as experiment.METHODS
  out = []
  if config.method not in METHODS:
    out.append(f"method={config.method!r}: expected one of {METHODS}")
  from optical_jax.models.attention import IMPLEMENTATIONS

  if config.get("attention", "auto") not in IMPLEMENTATIONS:
    out.append(f"attention={config.attention!r}: expected one of {IMPLEMENTATIONS}")
  if config.dtype not in DTYPES:
    out.append(f"dtype={config.dtype!r}: expected one of {DTYPES}")
  t = config.train
  if t.num_steps < 0:
    out.append(f"train.num_steps={t.num_steps}: must be >= 0 (0 = train.num_epochs epochs)")
  if t.num_epochs < 0:
    out.append(f"train.num_epochs={t.num_epochs}: must be >= 0")
  if config.method != "zero_shot" and t.num_steps <= 0 and t.num_epochs <= 0:
    out.append(
      f"train.num_steps={t.num_steps} and train.num_epochs={t.num_epochs}: method "
      f"{config.method!r} would export an untrained student; set one of them > 0"
    )
  for name in ("batch_size", "learning_rate"):
    if not t[name] > 0:
      out.append(f"train.{name}={t[name]}: must be > 0")
  for name in ("warmup_steps", "weight_decay", "grad_clip", "interpolation"):
    if t[name] < 0:
      out.append(f"train.{name}={t[name]}: must be >= 0")
  if t.checkpoint_every < 1 or t.log_every < 1:
    out.append(
      f"train.checkpoint_every={t.checkpoint_every}, train.log_every={t.log_every}: must be >= 1"
    )
  if t.keep_checkpoints < 1:  # orbax keeps none with 0: nothing to resume from
    out.append(f"train.keep_checkpoints={t.keep_checkpoints}: must be >= 1")
  d = config.data
  if not 0.0 <= d.test_fraction < 1.0:
    out.append(f"data.test_fraction={d.test_fraction}: must be in [0, 1)")
  if d.max_length < 2:
    out.append(f"data.max_length={d.max_length}: must be >= 2")
  if not all(isinstance(b, int) and b >= 1 for b in d.buckets):
    out.append(f"data.buckets={d.buckets!r}: expected token lengths (integers >= 1)")
  if not 0.0 <= d.get("overlap_near", 0.0) <= 1.0:
    out.append(f"data.overlap_near={d.overlap_near}: must be in [0, 1] (0 = off)")
  if not 0.0 <= d.get("english_pairs", 0.0) < 1.0:
    out.append(f"data.english_pairs={d.english_pairs}: must be in [0, 1)")
  if not (config.mesh.data >= 1 or config.mesh.data == -1) or config.mesh.fsdp < 1:
    out.append(
      f"mesh={dict(config.mesh)}: fsdp must be >= 1 and data >= 1 (or -1: all devices / fsdp)"
    )
  if config.method in OBJECTIVES and not config.ot.threshold > 0:  # else Sinkhorn never stops early
    out.append(f"ot.threshold={config.ot.threshold}: must be > 0")
  if config.method in OBJECTIVES and config.ot.inner_iterations < 1:
    out.append(f"ot.inner_iterations={config.ot.inner_iterations}: must be >= 1")
  if config.method in OBJECTIVES:  # the objective's own rules (steps.py, losses/ot.py)
    try:
      DistillSpec.from_config(config)
    except ValueError as e:
      out.append(f"ot / distill: {e}")
  tc = config.teacher
  if tc.get("model", "") and tc.get("model") == config.model:
    out.append(f"teacher.model={tc.model!r} is config.model: leave it '' for the self-teacher")
  if tc.get("model", "") and config.distill.layer != -1:
    out.append(
      f"distill.layer={config.distill.layer} with teacher.model={tc.model!r}: a "
      "teacher of another model is distilled at the last layer only (-1), where the "
      "student's output projection maps into the teacher's width"
    )
  if tc.get("model", "") and tc.get("projection_fit_texts", 1) < 1:
    out.append(f"teacher.projection_fit_texts={tc.projection_fit_texts}: must be >= 1")
  r = config.retrieval
  names = registry.dev_checks(config)
  for n, e in registry.evals(config).items():
    extra = sorted(set(e) - set(registry.EVAL_FIELDS))
    if extra:
      out.append(f"evals.{n}: unknown field {extra[0]!r}; expected {registry.EVAL_FIELDS}")
    if e.get("type") not in DEV_CHECKS:
      out.append(f"evals.{n}.type={e.get('type')!r}: expected one of {DEV_CHECKS}")
    elif "high" in e and e["type"] != "flores_devtest":
      out.append(f"evals.{n}.high: only a flores_devtest check has high-resource languages")
    if not parse_names(e.get("langs", ())):
      out.append(f"evals.{n}.langs: empty; name the query languages")
    bad = [h for h in parse_names(e.get("high", ())) if h not in parse_names(e.get("langs", ()))]
    if bad:
      out.append(f"evals.{n}.high: {bad[0]!r} is not one of its langs")
  for rk in parse_names(r.rankers):
    if rk not in RANKERS:
      out.append(f"retrieval.rankers: {rk!r} is not one of {RANKERS}")
  if names and r.k < 1:
    out.append(f"retrieval.k={r.k}: must be >= 1")
  return out


def validate(config) -> None:
  """Raises UsageError listing every problem of a train.py ``config`` (see module docstring)."""
  _raise(_problems(config))


def _raise(problems: List[str]) -> None:
  if problems:
    raise UsageError(f"config: {len(problems)} problem(s): " + "; ".join(problems))


def validate_for_model(config, num_layers: int) -> None:
  """The rules that need the loaded model (``num_layers`` transformer blocks), checked before
  anything is written or trained: ``distill.layer`` names one of its hidden states (-1 = last,
  0 = embeddings, ..., ``num_layers``); a larger index would be clamped by XLA, silently
  distilling the last layer."""
  layer = config.distill.layer
  if config.method != "zero_shot" and not (layer == -1 or 0 <= layer <= num_layers):
    _raise(
      [
        f"distill.layer={layer}: the model has {num_layers} layers; expected -1 (the last), "
        f"0 (the embeddings) or 1..{num_layers}"
      ]
    )


def _split(s) -> List[str]:
  from optical_jax.testsets.registry import parse_names  # pylint: disable=import-outside-toplevel

  return list(parse_names(s))


def validate_gap_study(config) -> None:
  """Raises UsageError listing every problem of a gap-study config (``study.py`` with
  configs/gap_study*.py) that does not belong to one of its training runs (``validate`` checks
  those): what is compared (encoders, methods, low- and high-resource languages) and how (the
  collection builder, the ranker, the metric reported, the bootstrap)."""
  # pylint: disable=import-outside-toplevel
  from optical_jax.evaluation.metrics import DEFAULT_MEASURES
  from optical_jax.retrieval.collection_eval import RANKER_CHOICES
  from optical_jax.testsets.registry import STUDY_BUILDERS
  from optical_jax.losses.objectives import OBJECTIVES

  methods = ("zero_shot",) + OBJECTIVES
  out = []
  if not _split(config.encoders):
    out.append("encoders='': name at least one encoder")
  given = _split(config.methods)
  if not given:
    out.append(f"methods='': name at least one of {methods}")
  out += [f"methods: {m!r} is not one of {methods}" for m in given if m not in methods]
  for side in ("low", "high"):
    if not _split(config[side]):
      out.append(f"{side}='': the gap needs at least one {side}-resource query language")
  e = config.eval
  if e.metric not in DEFAULT_MEASURES:
    out.append(
      f"eval.metric={e.metric!r}: expected one of the measures evaluated, {DEFAULT_MEASURES}"
    )
  if e.ranker not in RANKER_CHOICES:
    out.append(f"eval.ranker={e.ranker!r}: expected one of {RANKER_CHOICES}")
  if e.bootstrap_samples < 1:
    out.append(
      f"eval.bootstrap_samples={e.bootstrap_samples}: must be >= 1 (the intervals are "
      "bootstrap percentiles)"
    )
  for name, low in (("k", 1), ("batch_size", 1), ("doc_max_length", 2)):
    if e[name] < low:
      out.append(f"eval.{name}={e[name]}: must be >= {low}")
  if config.collection.builder not in STUDY_BUILDERS:
    out.append(f"collection.builder={config.collection.builder!r}: expected 'ntrex' or 'dir'")
  _raise(out)
