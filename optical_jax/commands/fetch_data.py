"""The command that fetches datasets (:mod:`optical_jax.data.fetch`: what each dataset is, where it
comes from, how a file is fetched, resumed and verified)::

  python -m optical_jax.commands.fetch_data all --root ~/optical_data  # then OPTICAL_JAX_DATA=~/optical_data
  python -m optical_jax.commands.fetch_data afriqa flores200 tatoeba    # into the data root
  python -m optical_jax.commands.fetch_data hornmt --base_url http://mirror.example/raw

One line as each dataset is done; the first failure is one line and exit 1 (``cli.run``).
"""

from __future__ import annotations

from absl import flags

from optical_jax import cli
from optical_jax.data import roots
from optical_jax.data.fetch import DEFAULT_BASE_URL, RETRIES, check_base_url, fetch, resolve_names
from optical_jax.errors import UsageError

flags.DEFINE_string(
  "root", None, f"Data root to fill (default: ${roots.ENV}, else {roots.DEFAULT})."
)
flags.DEFINE_string(
  "base_url", DEFAULT_BASE_URL, "Fetch <base_url>/<owner>/<repo>/<commit>/<path> (a mirror)."
)
flags.DEFINE_integer("retries", RETRIES, "Resumed attempts after a connection drops mid-file.")


def main(argv) -> None:
  """``NAME... [--root DIR] [--base_url BASE] [--retries N]`` (module docstring)."""
  f = flags.FLAGS
  if f.retries < 0:
    raise UsageError(f"--retries={f.retries}: must be >= 0")
  check_base_url(f.base_url)
  for name in resolve_names(argv[1:]):  # one line as each dataset is done
    r = fetch([name], f.root, f.base_url, retries=f.retries)[name]
    print(
      f"{r.name}: {r.fetched} fetched ({r.bytes} bytes), {r.kept} already there -> {r.folder}",
      flush=True,
    )


if __name__ == "__main__":
  cli.run(main, positional=True)
