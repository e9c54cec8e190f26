"""Files: atomic writes (of a file or a whole folder), UTF-8 line reading, hashing, and the lock
that gives a work dir or an output folder to one run at a time (:func:`work_lock`).

Every file the package writes goes through here, so each write is atomic the same way: a
temporary file in the target's folder, flushed and ``fsync``-ed, then ``os.replace``-d over the
target (a reader sees the old file or the new one, never a part; a failed write leaves no
temporary behind). A folder (an exported model, a cache entry, eval.py's output set) is built
under a temporary name beside the target and swapped in whole by :func:`replace_folder`.

Text files are read by one reader, :func:`iter_lines`: UTF-8, split on ``\\n`` (``\\r\\n`` too),
a byte-order mark at the start dropped, an undecodable line reported with the file and line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import socket
import tempfile
import time
from typing import Iterable, Iterator, Tuple, Union

import numpy as np

from optical_jax.errors import UsageError

PathLike = Union[str, os.PathLike]

_BOM = b"\xef\xbb\xbf"


def _fsync_dir(directory: pathlib.Path) -> None:
  """Makes a rename in ``directory`` durable (where the platform allows opening a folder)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb"):
  """``with atomic_file(p) as f: f.write(...)``: a temporary file beside ``p``, flushed,
  ``fsync``-ed and renamed over ``p`` when the block ends without an exception (and removed
  when it raises). ``mode`` is ``"wb"`` or ``"w"`` (UTF-8, ``\\n`` newlines)."""
  if mode not in ("wb", "w"):
    raise ValueError(f"mode {mode!r}; expected 'wb' or 'w'")
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    kw = {} if mode == "wb" else {"encoding": "utf-8", "newline": "\n"}
    with os.fdopen(fd, mode, **kw) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)


def publish_file(part: PathLike, target: PathLike) -> None:
  """Renames the finished file ``part`` (written, e.g. downloaded in pieces, beside ``target``
  in the same folder) over ``target``: its bytes are ``fsync``-ed first and the rename made
  durable, so a reader sees the old ``target`` or the whole new one, as with :func:`atomic_file`."""
  part, target = pathlib.Path(part), pathlib.Path(target)
  with open(part, "rb+") as f:
    os.fsync(f.fileno())
  os.replace(part, target)
  _fsync_dir(target.parent)


def _refuse_a_file_above(path: pathlib.Path, what: str) -> pathlib.Path:
  """The nearest existing folder above ``path``; UsageError when what exists there is a file."""
  for parent in path.parents:
    if parent.exists():
      if not parent.is_dir():
        raise UsageError(f"{what} {path}: {parent} is a file, not a folder")
      return parent
  return pathlib.Path(".")  # unreachable for real paths (the root or '.' exists)


def _probe(path: pathlib.Path, what: str, folder: pathlib.Path, create: bool) -> None:
  """Raises :class:`optical_jax.errors.UsageError` naming ``path`` when no file can be made in
  ``folder`` (made first with ``create``): a probe file is written there and removed at once."""
  try:
    if create:
      folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)
  except OSError as e:
    raise UsageError(f"{what} {path}: cannot write there ({e.strerror}: {folder})") from None


def check_output_file(path: PathLike, what: str = "output") -> None:
  """Raises :class:`optical_jax.errors.UsageError` naming ``path`` when :func:`atomic_file`
  could not write it (a folder there, a file where a folder is needed, no permission), before
  the work that produces it; creates the missing folders above it."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise UsageError(f"{what} {path}: is a folder; expected a file path")
  _refuse_a_file_above(path, what)
  _probe(path, what, path.parent, create=True)


def check_output_folder(path: PathLike, what: str = "output") -> None:
  """Raises :class:`optical_jax.errors.UsageError` naming ``path`` when it cannot be a folder
  this process writes in (a file there or above it, no permission); creates it."""
  path = pathlib.Path(path)
  if path.is_file():
    raise UsageError(f"{what} {path}: is a file; expected a folder")
  _refuse_a_file_above(path, what)
  _probe(path, what, path, create=True)


def check_work_folder(path: PathLike, what: str = "--workdir") -> None:
  """Raises :class:`optical_jax.errors.UsageError` naming ``path`` when it cannot become a folder
  this process writes in (a file there or above it, no permission). Creates nothing: the probe
  is made in the nearest existing folder."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise UsageError(f"{what} {path}: is a file; expected a folder")
  above = _refuse_a_file_above(path, what)
  _probe(path, what, path if path.is_dir() else above, create=False)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically (:func:`atomic_file`)."""
  with atomic_file(path, "wb") as f:
    f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
  """Writes ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically (:func:`atomic_file`)."""
  with atomic_file(path, "w") as f:
    f.write(text)


def write_json_atomic(path: PathLike, obj, indent: int = 2) -> None:
  """``obj`` as JSON (non-ASCII kept as is) written atomically."""
  atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def save_npy_atomic(path: PathLike, array) -> None:
  """``np.save`` of ``array`` to ``path`` (which should end in ``.npy``), atomically."""
  with atomic_file(path, "wb") as f:
    np.save(f, np.asarray(array))


def new_folder_beside(target: PathLike) -> pathlib.Path:
  """An empty temporary folder in ``target``'s parent, to be filled and then swapped in with
  :func:`replace_folder` (or removed with ``shutil.rmtree`` on failure)."""
  target = pathlib.Path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  return pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def replace_folder(tmp: PathLike, target: PathLike) -> None:
  """Swaps the finished folder ``tmp`` in as ``target``: an existing ``target`` is moved
  aside first and removed only once the new one is in place, so a failure at any point leaves
  either the old folder or the new one whole (a leftover ``.<name>.old`` from a crash in
  between is removed by the next swap)."""
  tmp, target = pathlib.Path(tmp), pathlib.Path(target)
  if target.exists():
    old = target.with_name(f".{target.name}.old")
    if old.exists():
      shutil.rmtree(old)
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old)
  else:
    os.replace(tmp, target)
  _fsync_dir(target.parent)


def publish_folder(tmp: PathLike, target: PathLike) -> bool:
  """Renames the finished folder ``tmp`` to ``target`` unless another writer published
  ``target`` first (a cache entry several processes may build at once): True when this one
  did; False when ``target`` already held a folder (``tmp`` is then left to the caller)."""
  tmp, target = pathlib.Path(tmp), pathlib.Path(target)
  try:
    os.replace(tmp, target)  # onto an empty or absent folder only; a full one raises
  except OSError:
    if not target.is_dir() or not any(target.iterdir()):
      raise
    return False
  _fsync_dir(target.parent)
  return True


def existing_file(path: PathLike, what: str = "") -> pathlib.Path:
  """``path`` as a Path when it is a file; ``FileNotFoundError`` ("no such file") or
  ``IsADirectoryError`` ("is a folder") naming it, and ``what`` it should hold, otherwise."""
  path = pathlib.Path(path)
  if path.is_file():
    return path
  note = f" ({what})" if what else ""
  if path.is_dir():
    raise IsADirectoryError(f"{path}: is a folder; expected a file{note}")
  raise FileNotFoundError(f"{path}: no such file{note}")


def iter_lines(
  path: PathLike, errors: str = "raise"
) -> Iterator[Tuple[int, Union[str, UnicodeDecodeError]]]:
  """(1-based line number, text) of a UTF-8 file split on ``\\n`` (``\\r\\n`` too), a BOM at
  its start dropped.

  Args:
    errors: ``"raise"``: an undecodable line raises ``ValueError`` naming the file, the line
      and the byte; ``"yield"``: it is yielded as its ``UnicodeDecodeError`` (for readers that
      report every bad line, or skip them, themselves).
  Raises:
    FileNotFoundError, IsADirectoryError: ``path`` is not a file (:func:`existing_file`).
  """
  path = existing_file(path)
  raw = path.read_bytes().split(b"\n")
  if raw and raw[-1] == b"":
    raw.pop()
  for i, line in enumerate(raw, start=1):
    if line.endswith(b"\r"):
      line = line[:-1]
    if i == 1 and line.startswith(_BOM):
      line = line[len(_BOM) :]
    try:
      yield i, line.decode("utf-8")
    except UnicodeDecodeError as e:
      if errors == "yield":
        yield i, e
      else:
        raise ValueError(f"{path}:{i}: {utf8_message(e)}") from None


def utf8_message(e: UnicodeDecodeError) -> str:
  """The one wording of an undecodable line."""
  return f"invalid UTF-8 ({e.reason} at byte {e.start} of the line); expected UTF-8 text"


def sha256_file(path: PathLike, block: int = 1 << 20) -> str:
  """Hex sha256 of a file, read in ``block``-byte pieces."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for piece in iter(lambda: f.read(block), b""):
      digest.update(piece)
  return digest.hexdigest()


def sha256_lines(lines: Iterable[str]) -> str:
  """Hex sha256 of ``lines`` joined by newlines (UTF-8)."""
  return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


class LockHeld(UsageError):
  """Another live process holds the work dir or output folder (:func:`work_lock`)."""


def lock_path(target: PathLike) -> pathlib.Path:
  """The lock file of ``target``: ``.<name>.lock`` beside it (its resolved path), outside the
  folder, so that a folder swapped in whole (eval.py's output set) keeps its lock."""
  target = pathlib.Path(target).expanduser().resolve()
  return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def work_lock(target: PathLike, what: str = "--workdir", active: bool = True):
  """``with work_lock(dir):`` the block runs holding an exclusive ``fcntl.flock`` on
  :func:`lock_path` of ``dir`` (the folders above it are made if missing). The kernel drops the
  lock when the holder's file is closed, so a process that dies (``kill -9`` included) leaves
  nothing stale: its file stays, unlocked, and the next run takes it over. A run that ends
  removes the file (while still holding it; an opener that raced with the removal finds another
  inode at the path and opens it again). The file holds the holder's pid, host and start time,
  for the refusal. ``active=False``: no lock (the processes of a
  multi-host job but process 0, which holds it for all).

  Raises:
    LockHeld: another process holds it (one line naming its pid and host).
    UsageError: the lock file cannot be made there (no permission, a file above it).
  """
  target = pathlib.Path(target)
  if not active:
    yield None
    return
  path = lock_path(target)
  _refuse_a_file_above(path, what)
  while True:
    fd = _open_lock(path, target, what)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").split()
      os.close(fd)
      who = dict(item.split("=", 1) for item in holder if "=" in item)
      raise LockHeld(
        f"{what} {target}: in use by another run (pid {who.get('pid', '?')} on host "
        f"{who.get('host', '?')}, since {who.get('since', '?')}; lock {path}); wait for it to "
        f"end, or use another {what}"
      ) from None
    mine = os.fstat(fd)
    try:
      now = os.stat(path)
    except FileNotFoundError:
      now = None
    if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
      break
    os.close(fd)  # a finishing holder removed the file after this one opened it: open it anew
  try:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={stamp}\n".encode(), 0)
    yield path
  finally:
    with contextlib.suppress(OSError):
      os.unlink(path)  # while still held: a waiting opener sees another inode and retries
    os.close(fd)  # releases the lock


def _open_lock(path: pathlib.Path, target: pathlib.Path, what: str) -> int:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise UsageError(f"{what} {target}: cannot make its lock {path} ({e.strerror})") from None
