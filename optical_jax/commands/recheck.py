"""The command that runs the retrieval checks of a finished train.py run again
(:func:`optical_jax.dev_eval.reevaluate`), with other rankers, fewer of its checks or the student
interpolated towards the teacher::

  python -m optical_jax.commands.recheck --workdir W [--rankers maxsim] [--evals afriqa]
      [--interpolation 0.5]

It reads the run's ``config.json`` and ``student/`` (the teacher when the run was zero-shot),
writes ``W/retrieval/*.json`` (``W/interpolation_<a>/retrieval`` with ``--interpolation``) and
prints the tables.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ml_collections
from absl import flags

from optical_jax import cli, dev_eval
from optical_jax.errors import UsageError
from optical_jax.evaluation.dev_tables import format_markdown
from optical_jax.testsets import registry


def main(argv=None) -> int:
  """The command line (module docstring). ``argv``: the
  arguments after the program name (default ``sys.argv[1:]``); errors are one line
  (:func:`optical_jax.cli.run`)."""
  f = flags.FlagValues()
  flags.DEFINE_string(
    "workdir", None, "A finished train.py work directory.", flag_values=f, required=True
  )
  flags.DEFINE_string("rankers", "", "Default: the run's config.retrieval.rankers.", flag_values=f)
  flags.DEFINE_string(
    "evals", "", "Which of the run's checks (config.evals names); default: all.", flag_values=f
  )
  flags.DEFINE_float(
    "interpolation",
    None,
    "Evaluate teacher + a * (student - teacher) instead (WiSE-FT); the outputs go to "
    "WORKDIR/interpolation_<a>/retrieval.",
    flag_values=f,
  )
  return cli.run(_command, prog="recheck", flag_values=f, argv=argv)


def _command(f, rest) -> int:
  """The command's work, on the parsed flags ``f`` (``rest``: none, cli.run refuses them)."""
  del rest
  work = Path(f.workdir)
  if not (work / "config.json").is_file():
    raise UsageError(f"--workdir {work}: no config.json; expected a train.py work directory")
  config = ml_collections.ConfigDict(json.loads((work / "config.json").read_text()))
  if f.rankers:
    config.retrieval.rankers = f.rankers
  if f.evals:
    try:
      config = registry.select(config, registry.parse_names(f.evals))
    except ValueError as e:
      raise UsageError(f"--evals: {e}") from None
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  print(format_markdown(dev_eval.reevaluate(work, config, f.interpolation)))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
