"""Small helpers shared by the entry points (train.py, eval.py, study.py)."""

from __future__ import annotations

import re
import sys
from typing import Callable

from absl import app


def _exit_on_unknown_key(e: AttributeError) -> None:
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
  advice = (f"did you mean {hint.group(1)!r}?" if hint else
            "see the config file for the available fields")
  print(f"error: {given[0].split('=')[0]}: the config has no key {key!r} ({advice})",
        file=sys.stderr)
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


def run(main: Callable) -> None:
  """``app.run(main)``, turning an unknown ``--config.<key>`` override and any
  :class:`optical_jax.errors.UsageError` into a one-line error (exit 2) instead of a traceback."""
  from optical_jax.errors import UsageError  # pylint: disable=import-outside-toplevel
  try:
    app.run(main)
  except AttributeError as e:
    _exit_on_unknown_key(e)
    raise
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
