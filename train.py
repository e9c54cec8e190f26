"""Entry point: `python train.py [--config=configs/default.py] [--workdir=DIR] [--config.x=...]`.

Parses flags and calls `optical_jax.experiment.train_and_evaluate`, which a
notebook can import too.
"""

import logging as std_logging

from absl import flags, logging

from optical_jax import cli, experiment
from optical_jax.evaluation.matching import format_table

_WORKDIR = flags.DEFINE_string("workdir", "workdir/default", "Where results and checkpoints go.")
_CONFIG = cli.config_flag("configs/default.py", "Job config.")


class _QuietLibraries(std_logging.Filter):
  """Drops INFO chatter of orbax (one line per file it writes) from the log."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv):
  del argv  # cli.parse_flags refuses positional arguments, with one line
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if _CONFIG.value.distributed:
    import jax  # pylint: disable=import-outside-toplevel
    from optical_jax.training import distributed  # pylint: disable=import-outside-toplevel

    distributed.initialize()
    logging.info(
      "process %d of %d, %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
    )
  results = experiment.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(format_table(results["results"]))
  if results.get("retrieval"):
    from optical_jax import dev_eval  # pylint: disable=import-outside-toplevel

    print(dev_eval.format_markdown(results["retrieval"]))
  print(
    f"\n{results['task']}; written to {_WORKDIR.value}/results.json "
    f"({results['seconds']} s, peak RSS {results['peak_rss_mb']} MB)"
  )


if __name__ == "__main__":
  cli.run(main)
