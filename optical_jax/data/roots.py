"""The one data root: where every reader and config looks for the corpora and collections.

``$OPTICAL_JAX_DATA`` (:data:`ENV`) when set, else ``../shared/data`` (:data:`DEFAULT`, relative
to the working directory, the repository root for train.py, eval.py and study.py; this team's
machines have it there). ``python -m optical_jax.commands.fetch_data all --root DIR`` fills a root with
the same layout; point ``OPTICAL_JAX_DATA`` (or ``--config.data.shared_root``) at it.
"""

from __future__ import annotations

import os

#: Environment variable naming the data root.
ENV = "OPTICAL_JAX_DATA"
#: The data root when :data:`ENV` is unset: this team's shared folder, beside the repository.
DEFAULT = "../shared/data"


def data_root() -> str:
  """``$OPTICAL_JAX_DATA`` if set and not empty, else :data:`DEFAULT`."""
  return os.environ.get(ENV, "").strip() or DEFAULT


def folder(name: str) -> str:
  """``<data_root()>/<name>``, e.g. ``folder("ntrex128")``."""
  return f"{data_root().rstrip('/')}/{name}"
