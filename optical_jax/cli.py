"""Small helpers shared by the entry points (train.py, eval.py, study.py)."""

from __future__ import annotations

import re
import sys
from typing import Callable

from absl import app


def run(main: Callable) -> None:
  """``app.run(main)``, turning an unknown ``--config.<key>`` override into a
  one-line error (exit 2) instead of a traceback."""
  try:
    app.run(main)
  except AttributeError as e:
    key = str(e).strip("\"'")
    given = [a for a in sys.argv[1:] if re.match(rf"--config(\.\w+)*\.{re.escape(key)}(=|$)", a)]
    if not given:
      raise
    print(f"error: {given[0].split('=')[0]}: the config has no key {key!r} "
          "(see the config file for the available fields)", file=sys.stderr)
    sys.exit(2)
