"""Entry point: `python study.py --config configs/gap_study.py --workdir DIR`.

Parses flags and runs the study on `optical_jax.studies.runner.run`: the NTREX gap study
(`studies/gap_grid.py`) or, for a config with `kind = "afriqa"` (configs/afriqa_study.py), the
AfriQA study (`studies/afriqa_grid.py`); rerunning resumes.
"""

from pathlib import Path

from absl import flags, logging

from optical_jax import cli
from optical_jax.studies import afriqa_grid, gap_grid, runner

_WORKDIR = flags.DEFINE_string("workdir", "workdir/gap_study", "Where cells, runs and reports go.")
_CONFIG = cli.config_flag("configs/gap_study.py", "Study config.")


def main(argv):
  del argv  # cli.parse_flags refuses positional arguments, with one line
  logging.set_verbosity(logging.INFO)
  study = afriqa_grid.STUDY if _CONFIG.value.get("kind", "gap") == "afriqa" else gap_grid.STUDY
  runner.run(study, _CONFIG.value, _WORKDIR.value)
  print((Path(_WORKDIR.value) / "report.md").read_text())


if __name__ == "__main__":
  cli.run(main)
