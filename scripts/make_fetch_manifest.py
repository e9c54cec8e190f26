"""Writes optical_jax/data/fetch_manifest.py from ../shared/data (run from the repository root).

  python scripts/make_fetch_manifest.py [--shared ../shared/data]

Each dataset's repository and commit are copied from its folder's PROVENANCE.md below (checked
against the file), the sha256 of each file from the folder's SHA256SUMS (AfriQA: its
UPSTREAM_SHA256SUMS, the upstream bytes, test split included; TICO-19 has no SHA256SUMS, so its
files are hashed here), and every hash is checked against the shared file where that exists.
Files that are not upstream bytes (SOURCE_BLOBS.txt, our PROVENANCE.md) and license files whose
upstream path no PROVENANCE records are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import re
import subprocess
import sys

#: name -> (folder, owner/repo, commit, license, upstream path of a local path (None = skip)).
AFRIQA_LANGS = ("bem", "hau", "ibo", "kin", "twi", "yor", "zul", "swa")


def _afriqa(local):
  return None  # AfriQA's files come from UPSTREAM_SHA256SUMS (below), not SHA256SUMS


def _ciral(local):
  m = re.fullmatch(r"(\w\w)/(test-[ab])\.(eng|\w\w)\.tsv", local)
  lang, split, side = m.groups()
  native = "" if side == "eng" else "-native"
  return f"topics/topics.ciral-v1.0-{lang}-{split}{native}.tsv"


def _flores(local):
  split, name = local.split("/")
  return f"data/common-parallel-corpora/flores-200-{split}/{name}"


def _prefixed(prefix, skip=(), renames=None):
  def upstream(local):
    if local in skip:
      return None
    if renames and local in renames:
      return renames[local]
    return prefix + local

  return upstream


DATASETS = {
  "afriqa": (
    "afriqa_dev",
    "masakhane-io/afriqa",
    "5c29933753692c28773c34ac1f68482007f1d2bb",
    "CC BY 4.0 (AfriQA; Ogundepo et al., Findings of EMNLP 2023)",
    _afriqa,
  ),
  "ciral": (
    "ciral_queries",
    "castorini/anserini-tools",
    "5b819c1a45c8a0a3ec9426f476694f44a29dfaf3",
    "Apache-2.0 (CIRAL topics via anserini-tools; Adeyemi et al.)",
    _ciral,
  ),
  "flores200": (
    "flores200",
    "common-parallel-corpora/common-parallel-corpora",
    "dbc2cd91df89c52dffe899efe7ea4dff63e172fc",
    "CC BY-SA 4.0 (FLORES-200; NLLB Team et al. 2022)",
    _flores,
  ),
  "hornmt": (
    "hornmt",
    "asmelashteka/HornMT",
    "e67b5bc341e5893ef1f3f167a5022694c6da76d8",
    "CC BY 4.0 (HornMT)",
    _prefixed("data/"),
  ),
  "mafand": (
    "mafand_mt",
    "masakhane-io/lafand-mt",
    "d441f8b063d63e95eafb72e84317359e27abf95e",
    "CC BY-NC 4.0 (MAFAND-MT; Adelani et al., NAACL 2022)",
    _prefixed("data/text_files/", skip=("CODE_LICENSE_GPL3.txt",)),
  ),
  "menyo20k": (
    "menyo20k",
    "uds-lsv/menyo-20k_MT",
    "0f2b019c2264a90813559c2e1cd7143054a4c36c",
    "CC BY-NC 4.0 (MENYO-20k; Adelani et al. 2021)",
    _prefixed("data/"),
  ),
  "ntrex128": (
    "ntrex128",
    "MicrosoftTranslator/NTREX",
    "8561f6a622db9edad1217683e5c83daefd8bb2bf",
    "CC BY-SA 4.0 (NTREX-128; Federmann et al. 2022)",
    _prefixed("", skip=("SOURCE_BLOBS.txt",)),
  ),
  "tatoeba": (
    "tatoeba",
    "facebookresearch/LASER",
    "74bc6ae7ffb7cba670fe0f428d0ede9f666fb821",
    "CC BY 2.0 FR (Tatoeba via LASER; Artetxe & Schwenk 2019)",
    _prefixed(
      "data/tatoeba/",
      skip=("SOURCE_BLOBS.txt",),
      renames={"LASER_REPO_LICENSE_BSD.txt": "LICENSE"},
    ),
  ),
  "tico19": (
    "tico19",
    "tico-19/tico-19.github.io",
    "d97615f9cffa28ec7de571e00fbd513e5a1c7fc7",
    "CC0 1.0 (TICO-19; Anastasopoulos et al. 2020)",
    _prefixed(
      "",
      skip=("SOURCE_BLOBS.txt",),
      renames={"ticopaper.bib": "data/paper/ticopaper.bib"},
    ),
  ),
  "wmt24pp": (
    "wmt24pp",
    "serjtroshin/seqsampling_shared",
    "055f1cbb6d41d1bee166bc8820af8586d6cb8274",
    "Apache-2.0 (WMT24++; Deutsch et al. 2025)",
    _prefixed("data/wmt24p/"),
  ),
}


def _sha(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _sums(path: pathlib.Path):
  for line in path.read_text(encoding="utf-8").splitlines():
    if line.strip() and not line.startswith("#"):
      sha, name = line.split(maxsplit=1)
      yield sha, name.strip().removeprefix("./")


def _files(shared: pathlib.Path, name: str):
  """[(local, upstream, sha256)] of one dataset."""
  folder, _, _, _, upstream = DATASETS[name]
  root = shared / folder
  out = []
  if name == "afriqa":
    for sha, up in _sums(root / "UPSTREAM_SHA256SUMS"):
      lang = up.split("/")[2]
      if lang in AFRIQA_LANGS and ".en." in up:
        out.append((up.removeprefix("data/gold_passages/"), up, sha))
        local = root / out[-1][0]
        if local.is_file() and _sha(local) != sha:
          print(f"note: {local} differs from upstream (filtered copy)", file=sys.stderr)
    return sorted(out)
  if name == "tico19":
    found = sorted(
      str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"
    )
    entries = [(_sha(root / f), f) for f in found]
  else:
    entries = list(_sums(root / "SHA256SUMS"))
  for sha, local in entries:
    up = upstream(local)
    if up is None:
      continue
    if _sha(root / local) != sha:
      raise SystemExit(f"{root / local}: sha256 differs from {root}/SHA256SUMS")
    out.append((local, up, sha))
  return sorted(out)


def _check_provenance(shared: pathlib.Path, name: str) -> None:
  folder, repo, commit, _, _ = DATASETS[name]
  text = (shared / folder / "PROVENANCE.md").read_text(encoding="utf-8")
  if f"github.com/{repo}" not in text or commit not in text:
    raise SystemExit(f"{shared / folder}/PROVENANCE.md does not name {repo} at {commit}")


def _table(files, default_upstream) -> str:
  lines = []
  for local, up, sha in files:
    lines.append(f"{sha}  {local}" if up == default_upstream(local) else f"{sha}  {local}  {up}")
  return "\n".join(lines)


PREFIXES = {
  "afriqa": "data/gold_passages/",
  "ciral": None,
  "flores200": None,
  "hornmt": "data/",
  "mafand": "data/text_files/",
  "menyo20k": "data/",
  "ntrex128": "",
  "tatoeba": "data/tatoeba/",
  "tico19": "",
  "wmt24pp": "data/wmt24p/",
}


#: Datasets whose table is long enough to live in a module of its own (modules stay < 500 lines).
OWN_MODULE = {"tatoeba": "fetch_manifest_tatoeba"}


def render(shared: pathlib.Path):
  """(the text of fetch_manifest.py, {module name: text} of the tables in their own modules)."""
  blocks, modules = [], {}
  for name, (folder, repo, commit, license_, _) in DATASETS.items():
    _check_provenance(shared, name)
    prefix = PREFIXES[name]
    files = _files(shared, name)
    if prefix is None:
      table, prefix = _table(files, lambda local: None), ""
    else:
      table = _table(files, lambda local, p=prefix: p + local)
    if name in OWN_MODULE:
      modules[OWN_MODULE[name]] = (
        f'"""The {name} table of :mod:`optical_jax.data.fetch_manifest` (generated by\n'
        f'scripts/make_fetch_manifest.py; lines ``sha256  local [upstream]``)."""\n\n'
        f'TABLE = """\n{table}\n"""\n'
      )
      text = f"{OWN_MODULE[name]}.TABLE"
    else:
      text = f'"""\n{table}\n"""'
    blocks.append(
      f"  Dataset(\n    {name!r},\n    {folder!r},\n    {repo!r},\n    {commit!r},\n"
      f"    {license_!r},\n    {prefix!r},\n    _table(\n      {prefix!r},\n"
      f"      {text},\n    ),\n  ),"
    )
  imports = "".join(f"from optical_jax.data import {m}\n" for m in sorted(modules))
  return HEADER.replace("IMPORTS\n", imports) + "\n".join(blocks) + FOOTER, modules


HEADER = '''"""The pinned upstream files of every corpus and collection the configs use, for
:mod:`optical_jax.data.fetch` (``python -m optical_jax.commands.fetch_data``). Generated by ``scripts/make_fetch_manifest.py`` from the shared
folders' PROVENANCE.md and SHA256SUMS (AfriQA: UPSTREAM_SHA256SUMS, the upstream bytes with the
test split; TICO-19: hashed by the script); regenerate rather than edit.

Each :class:`Dataset` is one GitHub repository at one commit; a file is fetched from
``<base>/<owner>/<repo>/<commit>/<upstream>`` (base: ``https://raw.githubusercontent.com``) into
``<root>/<folder>/<local>``, the layout the readers expect (``../shared/data/<folder>``). In a
table each line is ``sha256  local`` (upstream = the dataset's prefix + local) or
``sha256  local  upstream``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

IMPORTS

@dataclasses.dataclass(frozen=True)
class FileSpec:
  """One file: its path in the repository, its path under the dataset's folder, its sha256."""

  upstream: str
  local: str
  sha256: str


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One dataset: ``name`` (what ``fetch`` takes), ``folder`` under the data root, the GitHub
  ``repo`` (owner/name) and ``commit``, its ``license``, the ``prefix`` most upstream paths share,
  and its ``files``."""

  name: str
  folder: str
  repo: str
  commit: str
  license: str
  prefix: str
  files: Tuple[FileSpec, ...]


def _table(prefix: str, text: str) -> Tuple[FileSpec, ...]:
  """Lines ``sha256  local [upstream]`` -> files (upstream defaults to ``prefix + local``)."""
  out = []
  for line in text.strip().splitlines():
    sha, local, *upstream = line.split()
    out.append(FileSpec(upstream[0] if upstream else prefix + local, local, sha))
  return tuple(out)


DATASETS: Dict[str, Dataset] = {
  d.name: d
  for d in (
'''

FOOTER = """
  )
}
"""


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shared", default="../shared/data")
  parser.add_argument("--out", default="optical_jax/data/fetch_manifest.py")
  args = parser.parse_args()
  text, modules = render(pathlib.Path(args.shared))
  out = pathlib.Path(args.out)
  out.write_text(text, encoding="utf-8")
  written = [str(out)]
  for module, module_text in modules.items():
    (out.parent / f"{module}.py").write_text(module_text, encoding="utf-8")
    written.append(str(out.parent / f"{module}.py"))
  subprocess.run([sys.executable, "-m", "ruff", "format", *written], check=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
