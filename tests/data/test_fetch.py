"""The data fetcher (optical_jax/data/fetch.py) against a local mirror (tests/mirror_server.py) of
the shared files under their upstream paths: the manifest agrees with ../shared/data, downloads
land in the readers' layout, a checksum mismatch, a 404 and no network are one line each, an
interrupted download resumes, and a reader (and train.py, slow) runs from the fetched root.
Nothing here reaches outside the machine; the tests skip where ../shared/data is absent."""

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_server import Mirror
from optical_jax.data import afriqa, corpora, fetch
from optical_jax.data.fetch_manifest import DATASETS
from optical_jax.errors import UsageError
from optical_jax.testsets import afriqa_passages

REPO = Path(__file__).resolve().parents[2]
#: Files of the shared folders that are not upstream bytes, or whose upstream path no
#: PROVENANCE records (so the fetcher does not write them).
NOT_FETCHED = {
  "PROVENANCE.md",
  "SHA256SUMS",
  "SOURCE_BLOBS.txt",
  "UPSTREAM_SHA256SUMS",
  "afriqa_dev/LICENSE",
  "mafand_mt/CODE_LICENSE_GPL3.txt",
}


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _path(d, spec) -> str:
  return f"/{d.repo}/{d.commit}/{spec.upstream}"


def _synthetic_test_file(shared: Path, lang: str) -> bytes:
  """An AfriQA test file for ``lang``: the first two rows of its train file (so the reader must
  drop them from train, and from dev where dev repeats them) and one question of its own."""
  rows = []
  train = afriqa.afriqa_file(shared / "afriqa_dev", lang, "train")
  if train.is_file():
    rows = train.read_text(encoding="utf-8").splitlines()[:2]
  own = {"id": "t0", "question_lang": f"{lang} test only?", "question_translated": "test only?"}
  return ("\n".join(rows + [json.dumps(own)]) + "\n").encode("utf-8")


def mirror_of(shared: Path):
  """(files for :class:`Mirror`, the manifest with their hashes): the shared files under their
  upstream paths. AfriQA's shared train/dev files are filtered copies and it has no test split,
  so those are served with their own hashes, beside synthetic test files
  (:func:`_synthetic_test_file`)."""
  files, datasets = {}, {}
  for name, d in DATASETS.items():
    specs = []
    for spec in d.files:
      src = shared / d.folder / spec.local
      if name == "afriqa":
        lang, base = spec.local.split("/")
        body = src.read_bytes() if src.is_file() else _synthetic_test_file(shared, lang)
        spec = dataclasses.replace(spec, sha256=_sha(body))
      else:
        body = src
      files[_path(d, spec)] = body
      specs.append(spec)
    datasets[name] = dataclasses.replace(d, files=tuple(specs))
  return files, datasets


@pytest.fixture(scope="module")
def mirrored(shared_data):
  return mirror_of(shared_data)


def _cli(*args, cwd=REPO, env=None):
  return subprocess.run(
    [sys.executable, "-m", "optical_jax.commands.fetch_data", *args],
    cwd=cwd,
    capture_output=True,
    text=True,
    timeout=120,
    env=env,
  )


def _one_error_line(proc) -> str:
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("fetch_data: error: "), proc.stderr
  return lines[0]


def test_manifest_matches_the_shared_folders(shared_data):
  """Every shared file the readers use is in the manifest with its sha256 (AfriQA: the upstream
  sums, test split included), and the manifest names nothing else."""
  upstream = {}
  for line in (shared_data / "afriqa_dev" / "UPSTREAM_SHA256SUMS").read_text().splitlines():
    if line and not line.startswith("#"):
      sha, path = line.split()
      upstream[path] = sha
  for name, d in DATASETS.items():
    folder = shared_data / d.folder
    on_disk = {
      str(p.relative_to(folder))
      for p in folder.rglob("*")
      if p.is_file()
      and p.name not in NOT_FETCHED
      and f"{d.folder}/{p.relative_to(folder)}" not in NOT_FETCHED
    }
    local = {s.local for s in d.files}
    if name == "afriqa":
      assert on_disk <= local and all(upstream[s.upstream] == s.sha256 for s in d.files)
      assert {s.local.split(".")[-2] for s in d.files} == {"train", "dev", "test"}
      continue
    assert local == on_disk, name
    for s in d.files:
      assert _sha((folder / s.local).read_bytes()) == s.sha256, (name, s.local)


def test_names_and_urls():
  assert fetch.resolve_names(["all"]) == list(DATASETS)
  assert fetch.resolve_names(["afriqa_dev", "afriqa", "mafand_mt"]) == ["afriqa", "mafand"]
  with pytest.raises(UsageError, match="unknown dataset 'nope'"):
    fetch.resolve_names(["nope"])
  with pytest.raises(UsageError, match="name the datasets"):
    fetch.resolve_names([])
  d = DATASETS["hornmt"]
  assert fetch.url_of(d, d.files[0]) == (
    f"https://raw.githubusercontent.com/asmelashteka/HornMT/{d.commit}/data/eng.txt"
  )
  with pytest.raises(UsageError, match="--base_url"):
    fetch.check_base_url("ftp://x")


def test_fetch_writes_the_readers_layout(shared_data, mirrored, tmp_path):
  files, datasets = mirrored
  root = tmp_path / "data"
  with Mirror(files) as m:
    reports = fetch.fetch(["hornmt", "ciral"], root, m.url, datasets=datasets)
    assert reports["hornmt"].fetched == 3 and reports["ciral"].fetched == 16
    for name in ("hornmt", "ciral"):
      d = DATASETS[name]
      for s in d.files:
        got = (root / d.folder / s.local).read_bytes()
        assert got == (shared_data / d.folder / s.local).read_bytes()
      sums = (root / d.folder / "SHA256SUMS").read_text()
      assert sums.splitlines()[0].endswith("  ./" + sorted(s.local for s in d.files)[0])
      assert d.commit in (root / d.folder / "PROVENANCE.md").read_text()
    n = len(m.requests)
    again = fetch.fetch(["hornmt"], root, m.url, datasets=datasets)
    assert again["hornmt"].kept == 3 and len(m.requests) == n  # nothing fetched twice
  assert not list(root.rglob("*.part"))
  # the readers work from the fetched root as from the shared one
  for name, lang in (("hornmt", "som"), ("ciral", "hau")):
    mine = corpora.read_corpus(name, None, lang, shared_root=root)
    ref = corpora.read_corpus(name, None, lang, shared_root=shared_data)
    assert [(p.english, p.foreign) for p in mine.pairs] == [
      (p.english, p.foreign) for p in ref.pairs
    ]


def test_interrupted_download_is_resumed(shared_data, mirrored, tmp_path):
  files, datasets = mirrored
  d = DATASETS["hornmt"]
  som = next(s for s in d.files if s.local == "som.txt")
  with Mirror(files) as m:
    m.drop_once.add(_path(d, som))
    fetch.fetch(["hornmt"], tmp_path, m.url, datasets=datasets, backoff=0)
    first, second = m.gets(_path(d, som))
  size = (shared_data / "hornmt" / "som.txt").stat().st_size
  assert first is None and second == f"bytes={size // 2}-"
  assert (tmp_path / "hornmt" / "som.txt").read_bytes() == (
    shared_data / "hornmt/som.txt"
  ).read_bytes()
  assert not (tmp_path / "hornmt" / "som.txt.part").exists()


@pytest.mark.parametrize("ranges", [True, False])
def test_a_part_left_by_a_killed_run_is_resumed(shared_data, mirrored, tmp_path, ranges):
  """A ``.part`` from an earlier run is continued with a Range request; a server without range
  support sends the whole file, which replaces the part."""
  files, datasets = mirrored
  d = DATASETS["hornmt"]
  want = (shared_data / "hornmt" / "eng.txt").read_bytes()
  part = tmp_path / "hornmt" / "eng.txt.part"
  part.parent.mkdir(parents=True)
  part.write_bytes(want[:1000])
  with Mirror(files, ranges=ranges) as m:
    fetch.fetch(["hornmt"], tmp_path, m.url, datasets=datasets)
    assert m.gets(_path(d, d.files[0])) == ["bytes=1000-"]
  assert (tmp_path / "hornmt" / "eng.txt").read_bytes() == want and not part.exists()


def test_a_wrong_part_fails_the_checksum_and_is_removed(mirrored, tmp_path):
  files, datasets = mirrored
  part = tmp_path / "hornmt" / "eng.txt.part"
  part.parent.mkdir(parents=True)
  part.write_bytes(b"not the start of the file\n")
  with Mirror(files) as m:
    with pytest.raises(fetch.FetchError, match="checksum mismatch"):
      fetch.fetch(["hornmt"], tmp_path, m.url, datasets=datasets)
    assert not part.exists() and not (tmp_path / "hornmt" / "eng.txt").exists()
    fetch.fetch(["hornmt"], tmp_path, m.url, datasets=datasets)  # the next run starts afresh
  assert (tmp_path / "hornmt" / "eng.txt").is_file()


def test_the_command_fetches_and_says_so(mirrored, tmp_path):
  """The command with the real manifest (hornmt's shared files are the upstream bytes)."""
  files, _ = mirrored
  with Mirror(files) as m:
    proc = _cli("hornmt", "ciral_queries", "--root", str(tmp_path), "--base_url", m.url + "/")
  assert proc.returncode == 0, proc.stderr

  def line(name, folder):
    size = sum(len(m.body(_path(DATASETS[name], s))) for s in DATASETS[name].files)
    n = len(DATASETS[name].files)
    return f"{name}: {n} fetched ({size} bytes), 0 already there -> {tmp_path / folder}"

  assert proc.stdout.splitlines() == [line("hornmt", "hornmt"), line("ciral", "ciral_queries")]


def test_checksum_mismatch_is_one_line(mirrored, tmp_path):
  """The command with the real manifest: a mirror holding other bytes fails in one line, exit 1,
  and leaves neither the file nor its part."""
  files, _ = mirrored
  d = DATASETS["hornmt"]
  files = dict(files)
  files[_path(d, d.files[0])] = b"other bytes\n"
  with Mirror(files) as m:
    proc = _cli("hornmt", "--root", str(tmp_path), "--base_url", m.url)
  assert proc.returncode == 1
  line = _one_error_line(proc)
  assert "hornmt eng.txt" in line and "checksum mismatch" in line and d.files[0].sha256 in line
  assert not list((tmp_path / "hornmt").glob("eng.txt*"))


def test_404_is_one_line(mirrored, tmp_path):
  files, _ = mirrored
  d = DATASETS["hornmt"]
  files = {k: v for k, v in files.items() if not k.endswith("/data/metadata.tsv")}
  with Mirror(files) as m:
    proc = _cli("hornmt", "--root", str(tmp_path), "--base_url", m.url)
  assert proc.returncode == 1
  line = _one_error_line(proc)
  assert "HTTP 404" in line and f"{d.repo}/{d.commit}/data/metadata.tsv" in line
  assert (tmp_path / "hornmt" / "eng.txt").is_file()  # what came before stays


def test_no_network_is_one_line(tmp_path):
  with socket.socket() as s:  # a port nothing listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  proc = _cli("hornmt", "--root", str(tmp_path), "--base_url", f"http://127.0.0.1:{port}")
  assert proc.returncode == 1
  line = _one_error_line(proc)
  assert "cannot connect" in line and "refused" in line.lower()


def test_bad_names_are_usage_errors(tmp_path):
  proc = _cli("nope", "--root", str(tmp_path))
  assert proc.returncode == 2 and "unknown dataset 'nope'" in _one_error_line(proc)
  proc = _cli("--root", str(tmp_path))
  assert proc.returncode == 2 and "name the datasets" in _one_error_line(proc)


def test_fetched_afriqa_drops_questions_that_repeat_a_test_question(
  shared_data, mirrored, tmp_path
):
  """With the test split in the root, train/dev rows repeating a test question are dropped and
  counted; the shared folder (no test files) reads as before."""
  files, datasets = mirrored
  with Mirror(files) as m:
    fetch.fetch(["afriqa"], tmp_path, m.url, datasets=datasets)
  root = tmp_path / "afriqa_dev"
  held_out = afriqa.held_out_questions(root)
  assert len(afriqa.held_out_files(root)) == 8 and held_out
  rows, skipped = afriqa.read_afriqa(root, "hau", "train")
  ref, ref_skipped = afriqa.read_afriqa(shared_data / "afriqa_dev", "hau", "train")
  assert skipped["repeats_test_question"] == 2 and ref_skipped["repeats_test_question"] == 0
  assert [r.native for r in rows] == [r.native for r in ref[2:]]
  assert not {q for _, q in afriqa.question_pairs(root, ["hau"])["hau"]} & held_out
  coll = afriqa_passages.afriqa_collection(root, ["hau", "yor"])
  assert coll.meta["repeats_test_question"] >= 2 * 7
  assert coll.meta["counts"]["hau.train"]["repeats_test_question"] == 2
  assert not set(coll.queries["hau"].values()) & held_out
  shared_meta = afriqa_passages.afriqa_collection(shared_data / "afriqa_dev", ["hau"]).meta
  assert "repeats_test_question" not in shared_meta
  assert "repeats_test_question" not in shared_meta["counts"]["hau.train"]


@pytest.mark.slow
def test_fetch_all_then_train_without_shared(shared_data, mirrored, tmp_path):
  """The issue's done-when at tiny size: a copy of the repository with no ../shared beside it,
  `fetch all` from the mirror, then train.py with configs/tiny.py:afriqa on the fetched root
  ($OPTICAL_JAX_DATA)."""
  files, datasets = mirrored
  clone = tmp_path / "clone"
  for part in ("optical_jax", "configs"):
    shutil.copytree(REPO / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
  shutil.copy(REPO / "train.py", clone / "train.py")
  assert not (tmp_path / "shared").exists()
  data = tmp_path / "data"
  with Mirror(files) as m:
    reports = fetch.fetch(["all"], data, m.url, datasets=datasets)
  assert sum(r.fetched for r in reports.values()) == sum(len(d.files) for d in DATASETS.values())
  env = {k: v for k, v in os.environ.items() if k != "OPTICAL_JAX_DATA"}
  env.update(OPTICAL_JAX_DATA=str(data), JAX_PLATFORMS="cpu", PYTHONPATH=str(clone))
  proc = subprocess.run(
    [
      sys.executable,
      "train.py",
      "--config=configs/tiny.py:afriqa",
      "--config.model=random:tiny",
      f"--config.retrieval.cache_dir={tmp_path / 'cache'}",
      f"--workdir={tmp_path / 'run'}",
    ],
    cwd=clone,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert set(results["retrieval"]["afriqa.dense"]["closed"]["langs"]) == {"hau", "yor"}
  manifest = json.loads((tmp_path / "run" / "bitext_manifest.json").read_text())
  assert all(str(data) in r["path"] for r in manifest["sources"])
