"""One shape for every study behind ``python study.py``: plan -> validate -> train what is missing
-> evaluate -> report.

A study is a grid of ``train.py`` runs (``experiment.train_and_evaluate``) and the evaluations and
report over them. Its definition (a :class:`Study`: ``gap_grid.STUDY``, ``afriqa_grid.STUDY``)
says what the grid is; :func:`run` takes every study through the same stages, in this order:

1. ``check(config)``: the study's own settings, before the work dir is looked at;
2. the work dir is checked and locked (``io.check_work_folder``, ``io.work_lock``: one study
   per work dir, the lock taken before anything in it is read);
3. ``plan(config, work)``: every run of the grid (:class:`Run`), each run's config validated
   (``config_checks.validate``) and each run dir's identity checked (``training/identity.py``);
   nothing is written or trained yet, so a refused study leaves the work dir as it was;
4. ``prepare(config, work, plan)``: what the study records before training (``config.json``,
   the study's identity, a collection it builds);
5. every run that is not done trains (an unfinished one resumes from its checkpoints);
6. ``evaluate(config, work, plan)``: the evaluations that are missing (finished ones are kept);
7. ``report(config, work, plan)``: the report (``evaluation/report.py``), and what :func:`run`
   returns.

Rerunning the same command resumes: finished runs and evaluations are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List

import ml_collections

from optical_jax import experiment
from optical_jax.io import check_work_folder, work_lock

log = logging.getLogger(__name__)

#: The knowledge-distillation baselines; a study's "best KD baseline" is the best of these.
KD_METHODS = ("kd_sentence", "kd_token")


@dataclasses.dataclass(frozen=True)
class Run:
  """One ``train.py`` run of a study: ``config`` (validated) trains into ``run_dir`` unless
  ``done``; ``label`` names it in the log."""

  label: str
  run_dir: Path
  config: ml_collections.ConfigDict
  done: bool


@dataclasses.dataclass
class Plan:
  """A study's runs, and what its ``plan`` and ``prepare`` learned that later stages need
  (``context``: the study's own keys)."""

  runs: List[Run]
  context: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Study:
  """A study's definition: the stages :func:`run` calls (see the module docstring)."""

  name: str
  check: Callable[[ml_collections.ConfigDict], None]
  plan: Callable[[ml_collections.ConfigDict, Path], Plan]
  prepare: Callable[[ml_collections.ConfigDict, Path, Plan], None]
  evaluate: Callable[[ml_collections.ConfigDict, Path, Plan], None]
  report: Callable[[ml_collections.ConfigDict, Path, Plan], dict]


def run(study: Study, config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs ``study`` with ``config`` in ``workdir``: trains and evaluates what is missing, then
  writes the report; returns the study's summary (its ``report``)."""
  work = Path(workdir)
  study.check(config)  # the study's own settings, before anything is read or written
  check_work_folder(work)
  with work_lock(work):
    plan = study.plan(config, work)
    study.prepare(config, work, plan)
    train_missing(plan.runs)
    study.evaluate(config, work, plan)
    return study.report(config, work, plan)


def train_missing(runs: List[Run]) -> None:
  """Trains every run that is not done, in order (each through ``experiment.train_and_evaluate``,
  so a SIGTERM saves its step and ends the study with the run's one line)."""
  for r in runs:
    if r.done:
      log.info("%s: done", r.run_dir)
      continue
    log.info("study: %s -> %s", r.label, r.run_dir)
    experiment.train_and_evaluate(r.config, str(r.run_dir))
