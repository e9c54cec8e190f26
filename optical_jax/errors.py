"""Errors that are the user's to fix (a bad flag, config, input or work dir).

The entry points (``cli.run``) print them as one line and exit 2 instead of a traceback; they
subclass ValueError, so code that catches ValueError still does.
"""


class UsageError(ValueError):
  """A bad input, named in the message together with what to do about it."""
