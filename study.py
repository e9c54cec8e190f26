"""Entry point: `python study.py --config configs/gap_study.py --workdir DIR`.

Parses flags and calls `optical_jax.ntrex_study.run_study` (the NTREX gap study) or, for a config with
`kind = "afriqa"` (configs/afriqa_study.py), `optical_jax.afriqa_study.run_afriqa_study`;
rerunning resumes.
"""

from pathlib import Path

from absl import flags, logging

from optical_jax import afriqa_study, cli, ntrex_study

_WORKDIR = flags.DEFINE_string("workdir", "workdir/gap_study", "Where cells, runs and reports go.")
_CONFIG = cli.config_flag("configs/gap_study.py", "Study config.")


def main(argv):
  del argv  # cli.parse_flags refuses positional arguments, with one line
  logging.set_verbosity(logging.INFO)
  if _CONFIG.value.get("kind", "gap") == "afriqa":
    afriqa_study.run_afriqa_study(_CONFIG.value, _WORKDIR.value)
  else:
    ntrex_study.run_study(_CONFIG.value, _WORKDIR.value)
  print((Path(_WORKDIR.value) / "report.md").read_text())


if __name__ == "__main__":
  cli.run(main)
