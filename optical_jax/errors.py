"""Errors that are the user's to fix (a bad flag, config, input or work dir).

Every command's error handler (``cli.run``) prints them as one line and exits 2 instead of a
traceback; they subclass ValueError, so code that catches ValueError still does.
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
