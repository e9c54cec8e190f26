"""Fetches the corpora and collections the configs use from their upstreams, at pinned commits
(the command: ``python -m optical_jax.commands.fetch_data NAME... [--root DIR] [--base_url BASE]``).

``NAME``: a dataset of :data:`fetch_manifest.DATASETS` (``afriqa ciral flores200 hornmt mafand
menyo20k ntrex128 tatoeba tico19 wmt24pp``), its folder name (``afriqa_dev``, ``ciral_queries``,
``mafand_mt``) or ``all``. ``--root``: default the data root (:func:`roots.data_root`:
``$OPTICAL_JAX_DATA``, else ``../shared/data``). Each dataset is written to ``<root>/<folder>/``
in the layout the readers expect (the same as ``../shared/data/<folder>``), with a SHA256SUMS
and a short PROVENANCE.md of what was fetched. AfriQA comes with its test split, which the reader
uses only to drop train/dev questions that repeat a test question (``data/afriqa.py``).

Every upstream is a GitHub repository; a file is read from
``<base_url>/<owner>/<repo>/<commit>/<path>`` (the layout of GitHub's raw-file host,
:data:`DEFAULT_BASE_URL`), so ``--base_url`` names a mirror with the same layout (an air-gapped
site, a test server). For each file:

1. a file already at its place with the pinned sha256 is kept (nothing is fetched);
2. otherwise it is downloaded to ``<file>.part``; a ``.part`` left by an interrupted run is
   resumed with ``Range: bytes=<size>-`` (a server that answers 200 instead of 206 is read from
   the start again), and a connection that drops mid-file is resumed the same way, up to
   ``--retries`` times;
3. its sha256 is checked (a mismatch removes the ``.part``) and it is renamed over the file
   (:func:`optical_jax.io.publish_file`), so a reader never sees a part.

The first failure stops the command with one line naming the dataset, the file, the URL and what
happened (cannot connect: offline or a wrong ``--base_url``; HTTP 404; the connection dropped
too often; a checksum mismatch), exit 1 (``cli.run``); files fetched before it stay, verified,
so running the command again goes on from there.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import pathlib
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Mapping, Optional, Sequence

from optical_jax.data import roots
from optical_jax.data.fetch_manifest import DATASETS, Dataset, FileSpec
from optical_jax.errors import UsageError
from optical_jax.io import atomic_write_text, publish_file, sha256_file

log = logging.getLogger(__name__)

#: GitHub's raw-file host: ``<base>/<owner>/<repo>/<commit>/<path>``.
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
#: Resumed attempts after a connection drops mid-file.
RETRIES = 3
#: Seconds to wait for a connection or for the next bytes.
TIMEOUT = 60.0
#: Bytes per read.
CHUNK = 1 << 16
#: Folder names accepted as dataset names.
ALIASES = {d.folder: d.name for d in DATASETS.values() if d.folder != d.name}


class FetchError(OSError):
  """A download that failed (cannot connect, an HTTP error, a dropped connection, a checksum),
  named with the dataset, file and URL; ``cli.run`` prints it as one line, exit 1."""


class _Dropped(Exception):
  """The connection ended before the whole file arrived (retried, resuming the ``.part``)."""


@dataclasses.dataclass
class Report:
  """What one dataset's fetch did: files kept (already there) and fetched, bytes downloaded."""

  name: str
  folder: pathlib.Path
  kept: int = 0
  fetched: int = 0
  bytes: int = 0


def resolve_names(names: Sequence[str]) -> List[str]:
  """Dataset names (``all``, aliases) -> :data:`DATASETS` keys in order, without repeats;
  UsageError naming an unknown one, or none given."""
  if not names:
    raise UsageError(f"name the datasets to fetch: {' '.join(DATASETS)}, or all")
  out = []
  for n in names:
    n = n.strip()
    found = list(DATASETS) if n == "all" else [ALIASES.get(n, n)]
    for name in found:
      if name not in DATASETS:
        raise UsageError(f"unknown dataset {n!r}; available: {' '.join(DATASETS)}, or all")
      if name not in out:
        out.append(name)
  return out


def url_of(dataset: Dataset, spec: FileSpec, base_url: str = DEFAULT_BASE_URL) -> str:
  """``<base_url>/<owner>/<repo>/<commit>/<upstream path>`` (the path URL-quoted)."""
  path = urllib.parse.quote(spec.upstream)
  return f"{base_url.rstrip('/')}/{dataset.repo}/{dataset.commit}/{path}"


def check_base_url(base_url: str) -> None:
  """UsageError unless ``base_url`` is an http(s) URL with a host."""
  parsed = urllib.parse.urlparse(base_url)
  if parsed.scheme not in ("http", "https") or not parsed.netloc:
    raise UsageError(
      f"--base_url={base_url!r}: expected http(s)://HOST[/PATH], under which "
      f"<owner>/<repo>/<commit>/<path> is served (default {DEFAULT_BASE_URL})"
    )


def _reason(e: BaseException) -> str:
  """A short cause for a failed connection: 'Connection refused', 'timed out', ..."""
  reason = getattr(e, "reason", e)
  if isinstance(reason, socket.gaierror):
    return f"cannot resolve the host ({reason.strerror or reason})"
  if isinstance(reason, (socket.timeout, TimeoutError)):
    return "timed out"
  if isinstance(reason, OSError) and reason.strerror:
    return reason.strerror
  return str(reason) or type(reason).__name__


def _download(url: str, part: pathlib.Path, timeout: float) -> None:
  """Appends ``url``'s bytes to ``part`` from its current size (a ``Range`` request when it has
  any) to the end. Raises :class:`_Dropped` when the connection ends early, ``HTTPError``,
  ``URLError``."""
  have = part.stat().st_size if part.exists() else 0
  headers = {"User-Agent": "optical_jax.commands.fetch_data"}
  if have:
    headers["Range"] = f"bytes={have}-"
  try:
    resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
  except urllib.error.HTTPError as e:
    if e.code == 416 and have:  # nothing after `have`: the part is whole (the sha256 decides)
      return
    raise
  except (ConnectionResetError, http.client.IncompleteRead) as e:  # dropped before the headers
    raise _Dropped(str(e) or type(e).__name__) from None
  with resp:
    if have and resp.status != 206:  # the server ignored the range: start again
      log.info("%s: no range support (HTTP %d); reading from the start", url, resp.status)
      have = 0
    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    got = 0
    with open(part, "ab" if have else "wb") as f:
      try:
        while True:
          chunk = resp.read(CHUNK)
          if not chunk:
            break
          f.write(chunk)
          got += len(chunk)
      except (ConnectionError, http.client.IncompleteRead, socket.timeout, TimeoutError) as e:
        raise _Dropped(f"{type(e).__name__} after {have + got} bytes") from None
      finally:
        f.flush()
        os.fsync(f.fileno())
    if expected is not None and got < expected:
      raise _Dropped(f"connection closed after {have + got} of {have + expected} bytes")


def fetch_file(
  dataset: Dataset,
  spec: FileSpec,
  folder: pathlib.Path,
  base_url: str = DEFAULT_BASE_URL,
  retries: int = RETRIES,
  timeout: float = TIMEOUT,
  backoff: float = 1.0,
) -> Optional[int]:
  """Puts one verified file at ``folder/spec.local`` (module docstring, steps 1-3); returns the
  bytes downloaded by this call, None when the file was already there. Raises
  :class:`FetchError`."""
  target = folder / spec.local
  if target.is_file():
    if sha256_file(target) == spec.sha256:
      return None
    log.warning("%s differs from the pinned sha256; fetching it again", target)
  target.parent.mkdir(parents=True, exist_ok=True)
  part = target.with_name(target.name + ".part")
  url = url_of(dataset, spec, base_url)
  what = f"{dataset.name} {spec.local}: {url}"
  before = part.stat().st_size if part.exists() else 0
  for attempt in range(retries + 1):
    try:
      _download(url, part, timeout)
      break
    except _Dropped as e:
      if attempt == retries:
        raise FetchError(
          f"{what}: the connection dropped {retries + 1} times ({e}); run again to resume "
          f"from the {part.stat().st_size if part.exists() else 0} bytes in {part}"
        ) from None
      log.warning("%s: %s; resuming (%d of %d)", url, e, attempt + 1, retries)
      time.sleep(backoff * (attempt + 1))
    except urllib.error.HTTPError as e:
      raise FetchError(f"{what}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
      raise FetchError(
        f"{what}: cannot connect ({_reason(e)}): offline, or --base_url names no server "
        "with <owner>/<repo>/<commit>/<path>"
      ) from None
  got = sha256_file(part)
  if got != spec.sha256:
    part.unlink()
    raise FetchError(
      f"{what}: checksum mismatch (sha256 {got}, pinned {spec.sha256}); removed the download: "
      "the server holds other bytes than the pinned commit"
    )
  size = part.stat().st_size
  publish_file(part, target)
  return max(size - before, 0)


def _provenance(dataset: Dataset, base_url: str) -> str:
  return (
    f"# {dataset.name}: fetched by optical_jax.commands.fetch_data\n"
    f"- Repository: https://github.com/{dataset.repo}\n"
    f"- Commit: `{dataset.commit}`\n"
    f"- From: {base_url.rstrip('/')}/{dataset.repo}/{dataset.commit}/{dataset.prefix}...\n"
    f"- License: {dataset.license}\n"
    f"- Files: {len(dataset.files)}, each checked against the sha256 pinned in "
    "optical_jax/data/fetch_manifest.py (SHA256SUMS lists them).\n"
  )


def fetch(
  names: Sequence[str],
  root: Optional[os.PathLike] = None,
  base_url: str = DEFAULT_BASE_URL,
  retries: int = RETRIES,
  timeout: float = TIMEOUT,
  backoff: float = 1.0,
  datasets: Optional[Mapping[str, Dataset]] = None,
) -> Dict[str, Report]:
  """Fetches ``names`` (:func:`resolve_names`) under ``root`` (None: the data root).

  ``datasets``: the manifest (default :data:`DATASETS`; tests pass their own hashes). Returns
  ``{name: Report}``. Raises :class:`FetchError` at the first failure, UsageError for a bad
  name or base URL."""
  check_base_url(base_url)
  datasets = DATASETS if datasets is None else datasets
  root = pathlib.Path(roots.data_root() if root is None else root)
  reports = {}
  for name in resolve_names(names):
    dataset = datasets[name]
    report = Report(name, root / dataset.folder)
    for spec in dataset.files:
      n = fetch_file(dataset, spec, report.folder, base_url, retries, timeout, backoff)
      if n is None:
        report.kept += 1
      else:
        report.fetched += 1
        report.bytes += n
    sums = "".join(
      f"{s.sha256}  ./{s.local}\n" for s in sorted(dataset.files, key=lambda s: s.local)
    )
    atomic_write_text(report.folder / "SHA256SUMS", sums)
    atomic_write_text(report.folder / "PROVENANCE.md", _provenance(dataset, base_url))
    log.info(
      "%s: %d fetched, %d already there -> %s", name, report.fetched, report.kept, report.folder
    )
    reports[name] = report
  return reports
