"""optical_jax/io.py: atomic files and folders, the one line reader, hashing, work-dir locks."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optical_jax import io
from optical_jax.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def test_atomic_writes_round_trip_and_leave_no_temporary(tmp_path):
  io.atomic_write_text(tmp_path / "a" / "t.txt", "Habari\nya leo\n")
  io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
  io.write_json_atomic(tmp_path / "c.json", {"lugha": "Kiswahili", "n": 3})
  io.save_npy_atomic(tmp_path / "d.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
  assert (tmp_path / "a" / "t.txt").read_bytes() == b"Habari\nya leo\n"
  assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
  assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["lugha"] == "Kiswahili"
  assert "Kiswahili" in (tmp_path / "c.json").read_text(encoding="utf-8")  # not \\u-escaped
  np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.arange(6).reshape(2, 3))
  assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.bin", "c.json", "d.npy", "t.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
  target = tmp_path / "metrics.json"
  io.atomic_write_text(target, "old")
  with pytest.raises(RuntimeError, match="disk full"):
    with io.atomic_file(target, "w") as f:
      f.write("half of the new")
      raise RuntimeError("disk full")
  assert target.read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
  with pytest.raises(ValueError, match="mode 'a'"):
    with io.atomic_file(target, "a"):
      pass


def test_replace_folder_swaps_whole(tmp_path):
  target = tmp_path / "student"
  for version in ("one", "two"):
    tmp = io.new_folder_beside(target)
    (tmp / "model.txt").write_text(version)
    io.replace_folder(tmp, target)
    assert (target / "model.txt").read_text() == version
  assert [p.name for p in tmp_path.iterdir()] == ["student"]  # neither .tmp- nor .old left
  (tmp_path / ".student.old").mkdir()  # a crash between the two renames left this
  tmp = io.new_folder_beside(target)
  io.replace_folder(tmp, target)
  assert [p.name for p in tmp_path.iterdir()] == ["student"]


def test_iter_lines_bom_crlf_and_bad_bytes(tmp_path):
  p = tmp_path / "in.tsv"
  p.write_bytes(b"\xef\xbb\xbfq1\tHabari\r\nq2\t\xef\xbb\xbfkept\n\nq3\t\xff\xfe\nlast")
  got = list(io.iter_lines(p, errors="yield"))
  assert [n for n, _ in got] == [1, 2, 3, 4, 5]
  assert [t for _, t in got[:3]] == ["q1\tHabari", "q2\t\ufeffkept", ""]  # only the file's BOM
  assert isinstance(got[3][1], UnicodeDecodeError) and got[4][1] == "last"
  with pytest.raises(ValueError, match=r"in\.tsv:4: invalid UTF-8 \(invalid start byte at byte 3"):
    list(io.iter_lines(p))
  with pytest.raises(FileNotFoundError, match="no such file"):
    list(io.iter_lines(tmp_path / "absent.tsv"))
  with pytest.raises(IsADirectoryError, match=rf"{tmp_path}: is a folder; expected a file"):
    list(io.iter_lines(tmp_path))  # said "no such file"
  with pytest.raises(FileNotFoundError, match=r"absent\.tsv: no such file \(the queries\)"):
    io.existing_file(tmp_path / "absent.tsv", "the queries")


def test_output_checks_name_the_path_and_the_work_folder_check_creates_nothing(tmp_path):
  a_file = tmp_path / "a_file.txt"
  a_file.write_text("x")
  cases = [
    (io.check_work_folder, a_file, "is a file; expected a folder"),
    (io.check_work_folder, a_file / "w", f"{a_file} is a file, not a folder"),
    (io.check_output_folder, a_file, "is a file; expected a folder"),
    (io.check_output_file, tmp_path, "is a folder; expected a file path"),
    (io.check_output_file, a_file / "emb.npy", f"{a_file} is a file, not a folder"),
  ]
  for check, path, message in cases:
    with pytest.raises(UsageError, match=re.escape(f"--out {path}: {message}")):
      check(path, "--out")
  io.check_work_folder(tmp_path / "new" / "work")  # writable: passes, and makes no folder
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt"]
  io.check_output_folder(tmp_path / "made")  # the output checks create what they check
  io.check_output_file(tmp_path / "sub" / "emb.npy")
  assert (tmp_path / "made").is_dir() and (tmp_path / "sub").is_dir()
  assert not any((tmp_path / "made").iterdir()) and not any((tmp_path / "sub").iterdir())


def test_hashes(tmp_path):
  p = tmp_path / "f"
  p.write_bytes(b"x" * 5000)
  assert io.sha256_file(p, block=64) == hashlib.sha256(b"x" * 5000).hexdigest()
  assert io.sha256_lines(["a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()


def test_publish_folder_keeps_the_first_writer(tmp_path):
  target = tmp_path / "cache-entry"
  first, second = io.new_folder_beside(target), io.new_folder_beside(target)
  (first / "manifest.json").write_text("first")
  (second / "manifest.json").write_text("second")
  assert io.publish_folder(first, target) is True
  assert io.publish_folder(second, target) is False  # another process got there first
  assert (target / "manifest.json").read_text() == "first" and second.is_dir()


def test_publish_file_renames_a_part_over_its_target(tmp_path):
  target, part = tmp_path / "f.txt", tmp_path / "f.txt.part"
  target.write_text("old")
  part.write_bytes(b"new, written in pieces")
  io.publish_file(part, target)
  assert target.read_bytes() == b"new, written in pieces" and not part.exists()


def test_work_lock_refuses_a_second_holder_and_names_it(tmp_path):
  """A second holder (another open file, as another process would have) is refused with one line
  naming the first one's pid and host; the lock is beside the folder, which it does not create."""
  work = tmp_path / "runs" / "w"
  with io.work_lock(work) as path:
    assert path == tmp_path / "runs" / ".w.lock" and not work.exists()
    with pytest.raises(io.LockHeld) as e:
      with io.work_lock(tmp_path / "runs" / "." / "w", "--output"):  # the same folder
        pass
    line = str(e.value)
    assert "\n" not in line and f"pid {os.getpid()} on host {socket.gethostname()}" in line
    assert line.startswith(f"--output {tmp_path / 'runs' / '.' / 'w'}: in use by another run")
    with io.work_lock(tmp_path / "runs" / "other"):  # another folder: its own lock
      pass
  with io.work_lock(work):  # released at the end of the block, and its file removed
    pass
  assert not io.lock_path(work).exists()
  with io.work_lock(work, active=False) as path:  # a multi-host job's other processes
    assert path is None


def test_work_lock_of_a_killed_holder_is_not_stale(tmp_path):
  """kill -9 of the holder: the kernel drops its lock, and the next run takes it at once."""
  work = tmp_path / "w"
  code = (
    "import sys, time\nfrom optical_jax import io\n"
    f"with io.work_lock({str(work)!r}):\n  print('held', flush=True)\n  time.sleep(60)\n"
  )
  env = dict(os.environ, PYTHONPATH=str(REPO))
  holder = subprocess.Popen(
    [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(io.LockHeld, match=f"pid {holder.pid} on host"):
      with io.work_lock(work):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert io.lock_path(work).is_file()  # left by the killed holder, unlocked
  with io.work_lock(work):
    assert f"pid={os.getpid()} " in io.lock_path(work).read_text()
  assert not io.lock_path(work).exists()
