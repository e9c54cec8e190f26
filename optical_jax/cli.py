"""The command shape: absl flags and one error handler (:func:`run`) for every command, the entry
points (train.py, eval.py, study.py) and the ``python -m optical_jax...`` commands alike.

Errors reach the user as one line, ``<cli>: error: <what, with the file and line or the bad
value>``: exit 2 for a usage error (a bad flag or config value, a work dir of another run or
held by a live one), exit 1 for bad input found while working (a malformed file, a missing one).
Set ``OPTICAL_JAX_TRACEBACK=1`` to see the traceback instead.

Training stopped by SIGTERM/SIGINT after saving its checkpoint is not an error: one line,
``<cli>: preempted at step N; rerun the same command to resume``, and exit 75
(``errors.PREEMPTED_EXIT``).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

#: Environment variable: when set (and not '0'), errors propagate with their traceback.
TRACEBACK_ENV = "OPTICAL_JAX_TRACEBACK"


def _prog() -> str:
  return Path(sys.argv[0]).stem or "optical_jax"


def _traceback_wanted() -> bool:
  return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


from absl import app


def _exit_on_unknown_key(e: AttributeError, prog: Optional[str] = None) -> None:
  """Exits 2 with one line when ``e`` is ml_collections' error for a ``--config.<key>`` override
  naming a key the config does not have; returns otherwise (the caller re-raises)."""
  # ml_collections says "'key'" or "'key'\nDid you mean \"keys\" instead of \"key\"?", the
  # whole message sometimes quoted (and its newline escaped) once more.
  text = str(e).strip("\"'").replace("\\n", "\n").replace("\\'", "'")
  key = text.split("\n")[0].strip("\"'")
  hint = re.search(r'Did you mean "([^"]+)"', text)
  given = [a for a in sys.argv[1:] if re.match(rf"--config(\.\w+)*\.{re.escape(key)}(=|$)", a)]
  if not given:
    return
  advice = (
    f"did you mean {hint.group(1)!r}?" if hint else "see the config file for the available fields"
  )
  print(
    f"{prog or _prog()}: error: {given[0].split('=')[0]}: the config has no key {key!r} ({advice})",
    file=sys.stderr,
  )
  sys.exit(2)


def config_flag(default: str, help_text: str):
  """``config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)``.

  When ``--config`` is not given, ml_collections applies the ``--config.<key>`` overrides
  while defining the flag (at import), outside :func:`run`; an unknown key there gets the same
  one-line error."""
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel

  try:
    return config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
  except AttributeError as e:
    _exit_on_unknown_key(e)
    raise


def flag_error_line(e: Exception) -> str:
  """absl's message for a bad flag as one line: a ``--config`` file that raised while building
  the config embeds its traceback, of which the exception's own line is kept."""
  text = str(e).strip()
  if "Traceback (most recent call last)" in text:
    head = text.split("\n")[0].strip()
    last = [line.strip() for line in text.split("\n") if line.strip()][-1]
    text = f"{head} {last}"
  return re.sub(r"\s*\n\s*", " ", text)


#: Environment variable: folder of XLA's persistent compilation cache for the commands (opt-in:
#: unset or ``off``, no cache; in the test suite a shared cache crashed jitted steps, so it is not a
#: default until that is understood).
XLA_CACHE_ENV = "OPTICAL_JAX_XLA_CACHE"


def enable_compile_cache() -> str | None:
  """Turns on JAX's persistent compilation cache for this process (programs that took at least
  JAX's ``jax_persistent_cache_min_compile_time_secs``, 1 s by default, to compile), in
  ``$OPTICAL_JAX_XLA_CACHE`` when it is set: a command's second run reuses the
  encoder's and the search's compiled programs instead of compiling them again (seconds each on
  a CPU; ``docs/PERFORMANCE.md``). Called by :func:`parse_flags`, so by every command; touches no
  device. Returns the folder, or None when the variable is unset or ``off``."""
  folder = os.environ.get(XLA_CACHE_ENV, "")
  if folder.strip().lower() in ("off", "0", "none", ""):
    return None
  import jax  # pylint: disable=import-outside-toplevel

  folder = str(Path(folder).expanduser())
  jax.config.update("jax_compilation_cache_dir", folder)
  return folder


def parse_flags(argv, flag_values=None, positional: bool = False, prog: Optional[str] = None):
  """absl's flag parsing, with a bad flag (a wrong type or enum value, a missing required flag,
  a config file that raises) or a positional argument as one line ``<cli>: error: ...`` and
  exit 2 in place of absl's "FATAL Flags parsing error" block. ``flag_values``: absl's
  ``flags.FLAGS`` unless given (tests pass their own). ``positional``: the command takes
  positional arguments (``python -m optical_jax.commands.fetch_data NAME...``), returned after argv[0].
  ``prog``: the name the errors start with (default: the running script's)."""
  from absl import flags  # pylint: disable=import-outside-toplevel

  prog = prog or _prog()

  try:
    rest = (flags.FLAGS if flag_values is None else flag_values)(argv)
  except flags.Error as e:
    if _traceback_wanted():
      raise
    print(f"{prog}: error: {flag_error_line(e)} (--helpshort lists the flags)", file=sys.stderr)
    sys.exit(2)
  enable_compile_cache()
  if (
    len(rest) > 1 and not positional
  ):  # the entry points take flags only; a stray word is a typo, not an input
    print(
      f"{prog}: error: unexpected arguments {rest[1:]}: every input is a --flag "
      "(--helpshort lists them)",
      file=sys.stderr,
    )
    sys.exit(2)
  return rest


def run(
  main: Callable,
  positional: bool = False,
  *,
  prog: Optional[str] = None,
  flag_values=None,
  argv: Optional[Sequence[str]] = None,
  input_errors: Tuple[type, ...] = (),
) -> Optional[int]:
  """The one error handler of every command (module docstring): a bad flag, a stray positional
  argument, an unknown ``--config.<key>`` override and any :class:`optical_jax.errors.UsageError`
  print one line and exit 2; a ``ValueError`` or ``OSError`` (the readers' errors, which name the
  file and line; a missing file; a work dir that cannot be created or written), or one of
  ``input_errors``, one line and exit 1; :class:`optical_jax.errors.Preempted` its line and exit
  75. ``OPTICAL_JAX_TRACEBACK=1`` raises instead.

  Two ways in, one handling:

  * entry points (train.py, eval.py, study.py, ``python -m optical_jax.commands.fetch_data``), on absl's
    global flags: ``cli.run(main)`` under ``if __name__ == "__main__"``; absl's ``app.run(main)``
    with :func:`parse_flags`, exiting with ``main``'s return value or the error's code.
  * ``python -m`` commands with their own ``flags.FlagValues`` (tests call them in-process):
    ``return cli.run(body, prog="dev_eval", flag_values=f, argv=argv)`` parses ``argv`` (the
    arguments after the program name, default ``sys.argv[1:]``) and returns
    ``body(flag_values, positional_arguments)`` or the error's exit code instead of exiting.

  ``positional``: the command takes positional arguments (:func:`parse_flags`); without it a
  stray word is a usage error."""
  if flag_values is None:
    _handled(
      prog or _prog(),
      lambda: app.run(main, flags_parser=functools.partial(parse_flags, positional=positional)),
      input_errors,
    )
    return None
  prog = prog or _prog()
  argv = list(sys.argv[1:] if argv is None else argv)

  def call():
    if any(a in _HELP for a in argv):  # own FlagValues have no help flags: absl's app adds those
      print(f"{prog}:\n{flag_values.get_help()}")
      return 0
    rest = parse_flags([prog, *argv], flag_values, positional=positional, prog=prog)
    return main(flag_values, rest[1:])

  try:
    return _handled(prog, call, input_errors)
  except SystemExit as e:  # the one-line errors above exit; an in-process command returns
    return e.code


#: The help flags of absl's app, answered by :func:`run` for commands with their own FlagValues.
_HELP = ("--help", "--helpshort", "--helpfull", "-h", "-?")


def _handled(prog: str, call: Callable, input_errors: Tuple[type, ...]):
  """``call()``, its errors as :func:`run` says."""
  # pylint: disable-next=import-outside-toplevel
  from optical_jax.errors import PREEMPTED_EXIT, Preempted, UsageError

  try:
    return call()
  except AttributeError as e:
    _exit_on_unknown_key(e, prog)
    raise
  except Preempted as e:  # a checkpoint of the step was saved: the same command resumes
    print(f"{prog}: {e}", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT)
  except UsageError as e:
    if _traceback_wanted():
      raise
    print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)
  except (ValueError, OSError, *input_errors) as e:  # OSError: a bad work dir, a missing file
    if _traceback_wanted():
      raise
    print(f"{prog}: error: {_one_line(e)} ({TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
    sys.exit(1)


def _one_line(e: Exception) -> str:
  """The message of ``e`` on one line, also for multi-line messages."""
  return re.sub(r"\s*\n\s*", " ", str(e).strip())
