"""Readers for the shared bitext corpora, one API for all of them; they live under the data root
(:func:`roots.data_root`: ``$OPTICAL_JAX_DATA``, else ``../shared/data``).

Every reader takes ``(root, lang, split)`` and returns a :class:`bitext.BitextData` whose pairs
hold the English side first, ``source = "<file>:<line>"`` (the foreign file's line, 1-based, as
``sed -n Np`` counts) and ``doc_id`` where the corpus has documents (``''`` elsewhere).
Languages are ISO 639-3 codes in the API (``hau ibo kin swa yor zul som tgl mar twi bem amh xho
deu fra rus zho arb hin spa``); each reader maps them to the corpus's own codes, and a language
the corpus lacks raises ``ValueError`` listing the ones it has.

Corpora (:data:`CORPORA` holds each one's folder under ``shared_root``, license and splits):

* ``flores200``: ``<root>/{dev,devtest}/<code>.{dev,devtest}`` (``swa`` -> ``swh_Latn``...), line
  i of every file is the same sentence. No article ids in the files, so ``doc_id`` is ''. The
  devtest split is meant as a held-apart check: ``all`` in a mixture spec leaves it out
  (:data:`CorpusInfo.held_out`), naming it explicitly still reads it.
* ``mafand``: MAFAND-MT, ``<root>/en-<lang>/{train,dev,test}.{en,<lang>}`` (kin: no train).
* ``menyo20k``: Yoruba only, ``<root>/{train,dev,test}.tsv`` with a header row (CSV-quoted).
* ``hornmt``: Somali, ``<root>/{eng,som}.txt`` line-aligned; one split, called ``train``;
  ``doc_id`` is the article URL from ``metadata.tsv`` (column ``Source``).
* ``wmt24pp``: ``<root>/en-<code>.jsonl`` (``swa`` reads both ``sw_KE`` and ``sw_TZ``, so each
  English segment comes twice with two translations); rows with ``is_bad_source`` true are
  skipped and counted in ``BitextData.skipped``; ``target`` (the post-edited translation) is the
  foreign side; ``doc_id`` is ``document_id``; one split, ``test``.
* ``ciral``: CIRAL topics, ``<root>/<code>/<split>.eng.tsv`` and ``<split>.<code>.tsv``
  (``qid<TAB>text``), joined on qid; splits ``test-a`` and ``test-b``. A qid that occurs in only
  one file, or again in the same file (upstream ``sw/test-b.sw.tsv`` line 70 repeats qid 237 for
  the text of 238; the first occurrence is the right one) is skipped, counted and logged.
  CSV-quoted texts (``"... ""x"" ..."``) are unquoted. ``doc_id`` is ''.
* ``afriqa``: AfriQA question pairs (:func:`optical_jax.data.afriqa.question_pairs`), split
  ``train``; the dev split (and Yoruba's train) is the test split of the AfriQA collection and
  is refused, as ``afriqa.py`` does. ``doc_id`` is ''.

A stray U+FEFF (byte-order mark) inside a line, which a few MENYO-20k and MAFAND lines carry, is
removed from the text. :func:`read_corpus` dispatches on the corpus name.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import pathlib
from typing import Callable, Dict, List, Optional, Tuple, Union

from optical_jax.data import afriqa, roots
from optical_jax.data import bitext as bt
from optical_jax.io import existing_file, iter_lines

log = logging.getLogger(__name__)

# The line-level helpers of bitext.py, shared so that every reader reports errors the same way.
_read_parallel = bt._read_parallel  # pylint: disable=protected-access
_Skipper = bt._Skipper  # pylint: disable=protected-access
_pair = bt._pair  # pylint: disable=protected-access

PathLike = Union[str, os.PathLike]

#: The data root when ``$OPTICAL_JAX_DATA`` is unset (``roots.DEFAULT``); a reader given no root
#: asks :func:`roots.data_root`.
DEFAULT_SHARED_ROOT = roots.DEFAULT

#: Every ISO 639-3 code this module knows, with its FLORES-200 code.
FLORES_CODES = {
  "hau": "hau_Latn",
  "ibo": "ibo_Latn",
  "kin": "kin_Latn",
  "swa": "swh_Latn",
  "yor": "yor_Latn",
  "zul": "zul_Latn",
  "som": "som_Latn",
  "tgl": "tgl_Latn",
  "mar": "mar_Deva",
  "twi": "twi_Latn",
  "bem": "bem_Latn",
  "amh": "amh_Ethi",
  "xho": "xho_Latn",
  "deu": "deu_Latn",
  "fra": "fra_Latn",
  "rus": "rus_Cyrl",
  "zho": "zho_Hans",
  "arb": "arb_Arab",
  "hin": "hin_Deva",
  "spa": "spa_Latn",
}
MAFAND_CODES = {l: l for l in ("hau", "ibo", "kin", "swa", "yor", "zul")}
WMT24PP_CODES = {
  "swa": ("sw_KE", "sw_TZ"),
  "zul": ("zu_ZA",),
  "tgl": ("fil_PH",),
  "mar": ("mr_IN",),
}
CIRAL_CODES = {"hau": "ha", "som": "so", "swa": "sw", "yor": "yo"}


@dataclasses.dataclass(frozen=True)
class CorpusInfo:
  """A corpus in the registry.

  Attributes:
    name: the name used in :func:`read_corpus` and mixture specs.
    directory: its folder under ``shared_root``.
    license: license (and who to cite), from the folder's PROVENANCE.md.
    langs: ISO 639-3 code -> the corpus's own code(s).
    splits: the splits it has (for every language unless ``missing`` says otherwise).
    default_split: what :func:`read_corpus` reads when ``split`` is None.
    held_out: splits that ``all`` in a mixture spec leaves out (evaluation-only splits).
    missing: ``{lang: splits that language lacks}``.
    questions: its pairs are questions (a question-like selection, ``data/mixture.py``, keeps
      them whole and takes their English sides as its reference).
  """

  name: str
  directory: str
  license: str
  langs: Dict[str, object]
  splits: Tuple[str, ...]
  default_split: str
  held_out: Tuple[str, ...] = ()
  missing: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
  questions: bool = False

  def splits_of(self, lang: str) -> List[str]:
    """The splits ``lang`` has in this corpus."""
    return [s for s in self.splits if s not in self.missing.get(lang, ())]

  def trainable_splits(self, lang: str) -> List[str]:
    """What ``all`` means for ``lang``: its splits minus :attr:`held_out`."""
    return [s for s in self.splits_of(lang) if s not in self.held_out]


CORPORA: Dict[str, CorpusInfo] = {
  "flores200": CorpusInfo(
    "flores200",
    "flores200",
    "CC BY-SA 4.0 (FLORES-200; NLLB Team et al. 2022)",
    FLORES_CODES,
    ("dev", "devtest"),
    "dev",
    held_out=("devtest",),
  ),
  "mafand": CorpusInfo(
    "mafand",
    "mafand_mt",
    "CC BY-NC 4.0 (MAFAND-MT; Adelani et al., NAACL 2022)",
    MAFAND_CODES,
    ("train", "dev", "test"),
    "train",
    missing={"kin": ("train",)},
  ),
  "menyo20k": CorpusInfo(
    "menyo20k",
    "menyo20k",
    "CC BY-NC 4.0 (MENYO-20k; Adelani et al. 2021)",
    {"yor": "yor"},
    ("train", "dev", "test"),
    "train",
  ),
  "hornmt": CorpusInfo(
    "hornmt", "hornmt", "CC BY 4.0 (HornMT)", {"som": "som"}, ("train",), "train"
  ),
  "wmt24pp": CorpusInfo(
    "wmt24pp",
    "wmt24pp",
    "Apache-2.0 (WMT24++; Deutsch et al. 2025)",
    WMT24PP_CODES,
    ("test",),
    "test",
  ),
  "ciral": CorpusInfo(
    "ciral",
    "ciral_queries",
    "Apache-2.0 (CIRAL topics via anserini-tools; Adeyemi et al.)",
    CIRAL_CODES,
    ("test-a", "test-b"),
    "test-a",
    questions=True,
  ),
  "afriqa": CorpusInfo(
    "afriqa",
    "afriqa_dev",
    afriqa.LICENSE,
    {l: l for l in afriqa.LANGS},
    ("train",),
    "train",
    missing={l: ("train",) for l in afriqa.LANGS if afriqa.test_split(l) == "train"},
    questions=True,
  ),
}


def corpus_info(name: str) -> CorpusInfo:
  if name not in CORPORA:
    raise ValueError(f"unknown corpus {name!r}; available: {sorted(CORPORA)}")
  return CORPORA[name]


def default_root(name: str, shared_root: Optional[PathLike] = None) -> pathlib.Path:
  """Where corpus ``name`` lives under ``shared_root`` (None: :func:`roots.data_root`)."""
  shared_root = roots.data_root() if shared_root is None else shared_root
  return pathlib.Path(shared_root) / corpus_info(name).directory


def _code(name: str, lang: str):
  info = corpus_info(name)
  if lang not in info.langs:
    raise ValueError(
      f"{name} has no language {lang!r}; available (ISO 639-3): {sorted(info.langs)}"
    )
  return info.langs[lang]


def _check_split(name: str, lang: str, split: str) -> None:
  info = corpus_info(name)
  have = info.splits_of(lang)
  if split not in have:
    raise ValueError(f"{name} {lang} has no split {split!r}; available: {have}")


def _clean(data: bt.BitextData) -> bt.BitextData:
  """Drops stray U+FEFF from both sides (and the pairs that become empty, counted as skipped)."""
  pairs, dropped = [], 0
  for p in data.pairs:
    if "\ufeff" in p.english or "\ufeff" in p.foreign:
      p = dataclasses.replace(
        p,
        english=p.english.replace("\ufeff", "").strip(),
        foreign=p.foreign.replace("\ufeff", "").strip(),
      )
      if not p.english or not p.foreign:
        dropped += 1
        continue
    pairs.append(p)
  return bt.BitextData(pairs, data.skipped + dropped, data.path)


def _lines(path: pathlib.Path) -> List[str]:
  """UTF-8 lines of ``path`` (``optical_jax.io.iter_lines``); bad UTF-8 raises naming the line."""
  return [line for _, line in iter_lines(path)]


def read_flores200(root: PathLike, lang: str, split: str = "dev") -> bt.BitextData:
  """FLORES-200 ``dev`` (997 pairs) or ``devtest`` (1,012); ``doc_id`` is ''."""
  code = _code("flores200", lang)
  _check_split("flores200", lang, split)
  folder = pathlib.Path(root) / split
  foreign = existing_file(folder / f"{code}.{split}", f"FLORES-200 {lang} {split}")
  english = existing_file(folder / f"eng_Latn.{split}", f"FLORES-200 English {split}")
  return _clean(_read_parallel(english, foreign, None, None, False))


def read_mafand(root: PathLike, lang: str, split: str = "train") -> bt.BitextData:
  """MAFAND-MT ``en-<lang>/<split>.{en,<lang>}``; ``doc_id`` is ''."""
  code = _code("mafand", lang)
  _check_split("mafand", lang, split)
  folder = pathlib.Path(root) / f"en-{code}"
  foreign = existing_file(folder / f"{split}.{code}", f"MAFAND-MT {lang} {split}")
  english = existing_file(folder / f"{split}.en", f"MAFAND-MT English of {lang} {split}")
  return _clean(_read_parallel(english, foreign, None, None, False))


def read_menyo20k(root: PathLike, lang: str = "yor", split: str = "train") -> bt.BitextData:
  """MENYO-20k ``<split>.tsv``: a header row, then ``English<TAB>Yoruba``; ``doc_id`` is ''.

  The files are written with CSV quoting (a field holding ``"`` or a tab is quoted, inner quotes
  doubled; 1 dev line has a quoted tab), so each line is parsed as CSV; a tab inside a field
  becomes a space."""
  _code("menyo20k", lang)
  _check_split("menyo20k", lang, split)
  path = existing_file(pathlib.Path(root) / f"{split}.tsv", f"MENYO-20k {split}")
  lines = _lines(path)
  if not lines or lines[0].split("\t")[0].strip().lower() != "english":
    raise ValueError(
      f"{path}:1: expected the header row 'English<TAB>Yoruba', got "
      f"{(lines[0] if lines else '')[:60]!r}"
    )
  skip, pairs = _Skipper(False), []
  for lineno, line in enumerate(lines[1:], start=2):
    try:
      fields = next(csv.reader([line], delimiter="\t", strict=True))
    except csv.Error as e:
      raise ValueError(
        f"{path}:{lineno}: bad CSV quoting ({e}); expected English<TAB>Yoruba"
      ) from None
    if len(fields) != 2:
      raise ValueError(f"{path}:{lineno}: expected 2 tab-separated fields, got {len(fields)}")
    fields = [f.replace("\t", " ") for f in fields]
    pairs.append(_pair(fields[0], fields[1], f"{path}:{lineno}", "", f"{path.name}:{lineno}", skip))
  return _clean(bt.BitextData(pairs, 0, str(path)))


def read_hornmt(root: PathLike, lang: str = "som", split: str = "train") -> bt.BitextData:
  """HornMT ``eng.txt``/``som.txt`` (2,030 pairs); ``doc_id`` is the article URL."""
  code = _code("hornmt", lang)
  _check_split("hornmt", lang, split)
  root = pathlib.Path(root)
  foreign = existing_file(root / f"{code}.txt", f"HornMT {lang}")
  english = existing_file(root / "eng.txt", "HornMT English")
  meta = existing_file(root / "metadata.tsv", "HornMT metadata")
  rows = _lines(meta)
  header = rows[0].split("\t") if rows else []
  if "Source" not in header:
    raise ValueError(f"{meta}:1: expected a header row with a 'Source' column, got {header}")
  col, doc_ids = header.index("Source"), []
  for lineno, row in enumerate(rows[1:], start=2):
    fields = row.split("\t")
    if len(fields) != len(header):
      raise ValueError(
        f"{meta}:{lineno}: expected {len(header)} tab-separated fields, got {len(fields)}"
      )
    doc_ids.append(fields[col].strip())
  return _clean(_read_parallel(english, foreign, doc_ids, meta, False))


def read_wmt24pp(root: PathLike, lang: str, split: str = "test") -> bt.BitextData:
  """WMT24++ ``en-<code>.jsonl`` (both Swahili files for ``swa``), bad sources skipped."""
  codes = _code("wmt24pp", lang)
  _check_split("wmt24pp", lang, split)
  skip, pairs, paths, bad = _Skipper(False), [], [], 0
  for code in codes:
    path = existing_file(pathlib.Path(root) / f"en-{code}.jsonl", f"WMT24++ {lang}")
    paths.append(str(path))
    for lineno, line in enumerate(_lines(path), start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(
          f"{path}:{lineno}: invalid JSON ({e.msg}); expected one object per line"
        ) from None
      if (
        not isinstance(row, dict)
        or not isinstance(row.get("source"), str)
        or not isinstance(row.get("target"), str)
      ):
        raise ValueError(
          f"{path}:{lineno}: expected an object with string fields 'source' and 'target'"
        )
      if row.get("is_bad_source") is True:
        bad += 1
        continue
      pairs.append(
        _pair(
          row["source"],
          row["target"],
          f"{path}:{lineno}",
          str(row.get("document_id", "")),
          f"{path.name}:{lineno}",
          skip,
        )
      )
  if bad:
    log.info("WMT24++ %s: skipped %d rows with is_bad_source true", lang, bad)
  return _clean(bt.BitextData(pairs, bad, ",".join(paths)))


def _unquote(text: str) -> str:
  """``"a ""b"" c"`` -> ``a "b" c`` (CSV quoting in the CIRAL topic files)."""
  text = text.strip()
  if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
    return text[1:-1].replace('""', '"').strip()
  return text


def _read_topics(path: pathlib.Path) -> Tuple[Dict[str, Tuple[int, str]], int]:
  """qid -> (line, text) for ``qid<TAB>text`` lines; later repeats of a qid skipped, counted."""
  topics, repeats = {}, 0
  for lineno, line in enumerate(_lines(path), start=1):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) != 2:
      raise ValueError(
        f"{path}:{lineno}: expected 2 tab-separated fields 'qid<TAB>text', got {len(fields)}"
      )
    qid = fields[0].strip()
    if qid in topics:
      repeats += 1
      log.warning(
        "%s:%d: qid %s repeated (first on line %d); skipped", path, lineno, qid, topics[qid][0]
      )
      continue
    topics[qid] = (lineno, _unquote(fields[1]))
  return topics, repeats


def read_ciral(root: PathLike, lang: str, split: str = "test-a") -> bt.BitextData:
  """CIRAL topics, English and native joined on qid (native file order)."""
  code = _code("ciral", lang)
  _check_split("ciral", lang, split)
  folder = pathlib.Path(root) / code
  native_path = existing_file(folder / f"{split}.{code}.tsv", f"CIRAL {lang} {split} topics")
  english_path = existing_file(folder / f"{split}.eng.tsv", f"CIRAL English {split} topics")
  native, native_repeats = _read_topics(native_path)
  english, english_repeats = _read_topics(english_path)
  unmatched = len(set(native) ^ set(english))
  if unmatched:
    log.warning(
      "CIRAL %s %s: %d qids in only one of %s / %s; skipped",
      lang,
      split,
      unmatched,
      native_path.name,
      english_path.name,
    )
  skip, pairs = _Skipper(False), []
  for qid, (lineno, text) in native.items():
    if qid in english:
      pairs.append(
        _pair(
          english[qid][1], text, f"{native_path}:{lineno}", "", f"{native_path.name}:{lineno}", skip
        )
      )
  return bt.BitextData(pairs, native_repeats + english_repeats + unmatched, str(native_path))


def read_afriqa_questions(root: PathLike, lang: str, split: str = "train") -> bt.BitextData:
  """AfriQA (English, native) question pairs of ``split`` (refuses the collection's test split)."""
  _code("afriqa", lang)
  pairs = afriqa.question_pairs(root, [lang], split)[lang]  # refuses the test split
  rows, skipped = afriqa.read_afriqa(root, lang, split)
  path = afriqa.afriqa_file(root, lang, split)
  line_of, lineno = {}, 0
  for lineno, line in iter_lines(path):
    if line.strip():
      try:
        rid = str(json.loads(line).get("id", lineno - 1))
      except (json.JSONDecodeError, AttributeError):
        continue
      line_of.setdefault(rid, lineno)
  out = [
    bt.BitextPair(en, native, "", f"{path.name}:{line_of.get(r.id, 0)}")
    for (en, native), r in zip(pairs, rows)
  ]
  return bt.BitextData(
    out, skipped["question_not_a_string"] + skipped["repeats_test_question"], str(path)
  )


READERS: Dict[str, Callable[..., bt.BitextData]] = {
  "flores200": read_flores200,
  "mafand": read_mafand,
  "menyo20k": read_menyo20k,
  "hornmt": read_hornmt,
  "wmt24pp": read_wmt24pp,
  "ciral": read_ciral,
  "afriqa": read_afriqa_questions,
}


def read_corpus(
  name: str,
  root: Optional[PathLike],
  lang: str,
  split: Optional[str] = None,
  shared_root: Optional[PathLike] = None,
) -> bt.BitextData:
  """Reads one (corpus, language, split).

  Args:
    name: a key of :data:`CORPORA`.
    root: the corpus folder; None = :func:`default_root` (``shared_root/<directory>``).
    lang: ISO 639-3 code.
    split: None = the corpus's ``default_split``.
    shared_root: the data root (used when ``root`` is None; None = :func:`roots.data_root`).
  """
  info = corpus_info(name)
  root = default_root(name, shared_root) if root is None else pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(
      f"{root}: no such directory (corpus {name}; set the data root, "
      f"config.data.shared_root or ${roots.ENV}, or fetch it: python -m "
      f"optical_jax.commands.fetch_data {name} --root DIR)"
    )
  return READERS[name](root, lang, info.default_split if split is None else split)
