"""optical_jax/studies/afriqa_grid.py: the AfriQA study's plan (teacher folders, run folders) and
the settings it refuses before anything is written. Its tiny end-to-end runs are in
tests/test_afriqa_pipeline.py (they share that file's synthetic AfriQA/FLORES fixtures)."""

import re

import pytest

from configs import afriqa_study
from optical_jax.errors import UsageError
from optical_jax.studies import afriqa_grid, runner


def test_study_teacher_folders():
  """config.teachers -> one folder per teacher: config.distill's own in the work dir, each other in
  teacher-<name> ('self' when the configured teacher is another model)."""
  config = afriqa_study.get_config()
  assert afriqa_grid.teachers(config) == {"": ""}
  config.teachers = "self,pypi:all-mpnet-base-v2"
  assert afriqa_grid.teachers(config) == {
    "": "",
    "pypi:all-mpnet-base-v2": "teacher-pypi-all-mpnet-base-v2",
  }
  config.distill.teacher.model = "pypi:all-mpnet-base-v2"
  assert afriqa_grid.teachers(config) == {"": "teacher-self", "pypi:all-mpnet-base-v2": ""}


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("seeds", "0,x", r"config\.seeds='0,x': expected comma-separated ints"),
    ("methods", "optical:1+y", r"config\.methods \(optical:1\+y\)='1\+y': expected"),
    ("methods", "optimal", r"'optimal' is not one of"),
  ],
)
def test_study_plan_errors_are_usage_errors(tmp_path, field, value, message):
  config = afriqa_study.get_config()
  setattr(config, field, value)
  with pytest.raises(UsageError, match=message):
    afriqa_grid.run_dirs(config, tmp_path)


@pytest.mark.parametrize("samples", [0, -5])
def test_afriqa_study_refuses_no_bootstrap_before_anything_is_written(tmp_path, samples):
  """bootstrap_samples <= 0 gave NaN intervals in a finished report; now one line, before the
  work dir is made."""

  config = afriqa_study.get_config()
  config.bootstrap_samples = samples
  with pytest.raises(UsageError, match=rf"bootstrap_samples={samples}: must be >= 1"):
    runner.run(afriqa_grid.STUDY, config, str(tmp_path / "s"))
  assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
  "override, message",
  [
    ({"methods": "zero_shot,optcal"}, "'optcal' is not one of"),
    ({"methods": "", "interpolations": "half"}, "config.interpolations='half'"),
    ({"rankers": "dense,colbert"}, "config.rankers='dense,colbert': expected dense and/or maxsim"),
  ],
)
def test_afriqa_study_refused_keeps_the_work_dirs_config(tmp_path, override, message):
  """A refused study left its own config.json in a work dir that held another study's (the
  re-count's case 194); every setting is now checked before anything is written."""

  config = afriqa_study.get_config()
  for key, value in override.items():
    setattr(config, key, value)
  (tmp_path / "config.json").write_text('{"previous": "study"}')
  with pytest.raises(UsageError, match=re.escape(message)):
    runner.run(afriqa_grid.STUDY, config, str(tmp_path))
  assert (tmp_path / "config.json").read_text() == '{"previous": "study"}'
  assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_study_of_another_models_teacher_alone_reports_in_the_work_dir(tmp_path, monkeypatch):
  """config.distill.teacher.model set and config.teachers='': one teacher, config.distill's own,
  whose report goes in the work dir and whose analysis the study returns (no teachers.md)."""
  config = afriqa_study.get_config()
  config.distill.teacher.model = "pypi:all-mpnet-base-v2"
  config.methods = "zero_shot"
  p = afriqa_grid.plan(config, tmp_path)
  assert list(p.context["subs"]) == ["pypi:all-mpnet-base-v2"]
  monkeypatch.setattr(afriqa_grid, "analyse", lambda cfg, work: {"work": work})
  monkeypatch.setattr(afriqa_grid.report, "write_afriqa_report", lambda a, focus, work: None)
  out = afriqa_grid.write_outputs(config, tmp_path, p)
  assert out["work"] == tmp_path and set(out["by_ranker"]) == {"dense", "maxsim"}
  assert not (tmp_path / "teachers.md").exists()


def test_the_study_reports_both_rankers_by_default_and_reads_an_old_single_ranker():
  """config.rankers: dense and maxsim by default, one report each; a study config recorded before
  it named one ranker (config.ranker), which still selects that one."""
  config = afriqa_study.get_config()
  assert afriqa_grid.rankers(config) == ["dense", "maxsim"]
  old = afriqa_study.get_config()
  del old["rankers"]
  with old.unlocked():
    old.ranker = "maxsim"
  assert afriqa_grid.rankers(old) == ["maxsim"]
  assert afriqa_grid._with_ranker(config, "maxsim").ranker == "maxsim"
