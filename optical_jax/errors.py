"""Errors that are the user's to fix (a bad flag, config, input or work dir).

The entry points (``cli.run``) print them as one line and exit 2 instead of a traceback; they
subclass ValueError, so code that catches ValueError still does.
"""


class UsageError(ValueError):
  """A bad input, named in the message together with what to do about it."""


#: The exit status of a command stopped by a preemption signal after saving its state (75 is
#: ``EX_TEMPFAIL`` of sysexits.h: a temporary failure, to be retried). Not 1 or 2, so a job
#: script or scheduler can tell "rerun me" from an error.
PREEMPTED_EXIT = 75


class Preempted(Exception):
  """Training stopped on SIGTERM/SIGINT after saving a checkpoint of ``step``; the rerun of the
  same command resumes there (``training/preemption.py``). Not an error: ``cli.run`` prints
  its one line and exits :data:`PREEMPTED_EXIT`."""

  def __init__(self, step: int):
    super().__init__(f"preempted at step {step}; rerun the same command to resume")
    self.step = step


def run_command(prog: str, flag_values, argv, body) -> int:
  """The one-line error handling of the package's ``python -m`` commands, as ``cli.run`` gives
  the entry points: parses ``argv`` (the arguments after the program name) with the absl
  ``flag_values`` and returns ``body(flag_values, positional_arguments)``. A bad or missing flag
  and a :class:`UsageError` print ``<prog>: error: <what>`` and return 2; a ``ValueError`` or
  ``OSError`` (a malformed or missing file) one line and 1. ``OPTICAL_JAX_TRACEBACK=1`` raises
  instead."""
  import os  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  from absl import flags  # pylint: disable=import-outside-toplevel

  trace = os.environ.get("OPTICAL_JAX_TRACEBACK", "") not in ("", "0")

  def say(e) -> None:
    print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)

  try:
    rest = flag_values([prog, *argv])
  except flags.Error as e:
    if trace:
      raise
    say(f"{e} (--helpshort lists the flags)")
    return 2
  try:
    return body(flag_values, rest[1:])
  except UsageError as e:
    if trace:
      raise
    say(e)
    return 2
  except (ValueError, OSError) as e:
    if trace:
      raise
    say(e)
    return 1
