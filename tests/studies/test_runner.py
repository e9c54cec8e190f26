"""optical_jax/studies/runner.py: every study's stages in one order, the work dir locked, and only
the runs that are not done trained."""

import ml_collections
import pytest

from optical_jax.errors import UsageError
from optical_jax.studies import runner


def _study(calls, runs=(), refuse=False):
  def check(config):
    calls.append("check")
    if refuse:
      raise UsageError("config: nope")

  def plan(config, work):
    calls.append("plan")
    return runner.Plan(list(runs), {"planned": True})

  def prepare(config, work, p):
    calls.append("prepare")
    work.mkdir(parents=True, exist_ok=True)

  def evaluate(config, work, p):
    calls.append("evaluate")

  def report(config, work, p):
    calls.append("report")
    return {"planned": p.context["planned"]}

  return runner.Study("fake", check, plan, prepare, evaluate, report)


def test_the_stages_run_in_order_and_only_missing_runs_train(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(
    runner.experiment, "train_and_evaluate", lambda cfg, workdir: calls.append(f"train {cfg.n}")
  )
  runs = [
    runner.Run("done", tmp_path / "w" / "a", ml_collections.ConfigDict({"n": 1}), True),
    runner.Run("missing", tmp_path / "w" / "b", ml_collections.ConfigDict({"n": 2}), False),
  ]
  out = runner.run(_study(calls, runs), ml_collections.ConfigDict(), str(tmp_path / "w"))
  assert out == {"planned": True}
  assert calls == ["check", "plan", "prepare", "train 2", "evaluate", "report"]


def test_a_refused_study_touches_nothing(tmp_path):
  calls = []
  with pytest.raises(UsageError, match="nope"):
    runner.run(_study(calls, refuse=True), ml_collections.ConfigDict(), str(tmp_path / "w"))
  assert calls == ["check"] and not any(tmp_path.iterdir())
