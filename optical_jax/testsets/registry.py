"""The one registry of test collections by name: what each is, where its data is, how to load or
build it. The overlap guard, the config checks, the development checks (``dev_eval``), the
studies, ``eval.py`` and the building command (:mod:`optical_jax.commands.build_collection`) all ask it;
nothing else looks a collection up by name.

==================  =================  ==================  ====================================
name                kind               data root           loaded or built by
==================  =================  ==================  ====================================
``afriqa``          question->passage  ``afriqa_dev``      :func:`afriqa_passages.afriqa_collection`
``flores_devtest``  known-item         ``flores200``       :func:`builders.flores_collection`
``flores``          known-item         ``flores200``       the command (``--split``)
``ntrex``           known-item         ``ntrex128``        :func:`builders.build_ntrex`
``tico19``          known-item         ``tico19/...``      :func:`builders.build_tico19`
``tatoeba``         bitext-matching    ``tatoeba/v1``      ``dev_eval.tatoeba_check`` (pairs)
==================  =================  ==================  ====================================

``config.evals`` declares the development checks a run ends with, the big_vision way: one entry
per check, ``config.evals.<name> = dict(type=..., root=..., langs=..., [high=...])``, where
``type`` is a name of :data:`DEV_CHECKS` (defaults: ``configs/default.py: eval_config``);
:func:`evals` is the one reader of it (configs recorded before it existed declared their checks
as ``retrieval.collections`` and read as the same). ``config.data.overlap_collections`` names
collection folders, ``irds:<id>`` datasets or ``afriqa`` (:func:`guard_collection`). Config list
fields are tuples; :func:`parse_names` is the one parse of such a field, which also takes the
comma string that ``--config.evals.afriqa.langs=hau,yor`` gives (ml_collections parses it as a
one-element tuple) and the comma strings of configs recorded before the fields were tuples.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

from optical_jax.testsets import irds
from optical_jax.testsets.collection_format import Collection, read_collection, write_collection

PathLike = Union[str, os.PathLike]

QUESTION_PASSAGE = "question->passage"
KNOWN_ITEM = "known-item"
BITEXT_MATCHING = "bitext-matching"


def _afriqa(root, langs, **_):
  from optical_jax.testsets.afriqa_passages import afriqa_collection  # pylint: disable=import-outside-toplevel

  return afriqa_collection(root, langs)


def _flores(root, langs, split="devtest", **_):
  from optical_jax.testsets.builders import FLORES_FILES, flores_collection  # pylint: disable=import-outside-toplevel

  return flores_collection(root, langs or tuple(FLORES_FILES), split)


def _ntrex(root, out, langs, direction="foreign_query", with_title=True, overwrite=False, **_):
  from optical_jax.testsets.builders import build_ntrex  # pylint: disable=import-outside-toplevel

  return build_ntrex(root, out, langs, direction, with_title, overwrite)


def _tico19(root, out, langs, window=5, stride=5, overwrite=False, **_):
  from optical_jax.testsets.builders import build_tico19  # pylint: disable=import-outside-toplevel

  return {str(out): build_tico19(root, out, langs, window, stride, overwrite=overwrite)}


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
  """One registered collection.

  Attributes:
    name: how configs and the command name it.
    kind: :data:`QUESTION_PASSAGE`, :data:`KNOWN_ITEM` or :data:`BITEXT_MATCHING`.
    folder: its source under the data root (``config.data.shared_root``).
    legacy: the prefix of its fields in configs recorded before ``config.evals``
      (``retrieval.<legacy>_root``, ``_langs``, ``_high``); '' = none.
    load: ``(root, langs, **options) -> Collection``, in memory (None: not a collection).
    build: ``(root, out, langs, **options) -> {folder: Collection}`` writing it; None: the
      command writes what ``load`` returns.
    langs_required: the command needs ``--langs``.
    dev_check: a ``type`` of ``config.evals``.
  """

  name: str
  kind: str
  folder: str
  legacy: str = ""
  load: Optional[Callable[..., Collection]] = None
  build: Optional[Callable[..., Dict[str, Collection]]] = None
  langs_required: bool = False
  dev_check: bool = False


_SPECS = (
  CollectionSpec("afriqa", QUESTION_PASSAGE, "afriqa_dev", "afriqa", _afriqa, dev_check=True),
  CollectionSpec("flores_devtest", KNOWN_ITEM, "flores200", "flores", _flores, dev_check=True),
  CollectionSpec("tatoeba", BITEXT_MATCHING, "tatoeba/v1", "tatoeba", dev_check=True),
  CollectionSpec("ntrex", KNOWN_ITEM, "ntrex128", build=_ntrex, langs_required=True),
  CollectionSpec("tico19", KNOWN_ITEM, "tico19/original_zips", build=_tico19, langs_required=True),
  CollectionSpec("flores", KNOWN_ITEM, "flores200", load=_flores),
)
#: name -> its :class:`CollectionSpec`.
REGISTRY: Dict[str, CollectionSpec] = {s.name: s for s in _SPECS}
#: The types ``config.evals.<name>.type`` takes.
DEV_CHECKS: Tuple[str, ...] = tuple(s.name for s in _SPECS if s.dev_check)
#: The collections the command writes (``python -m optical_jax.commands.build_collection NAME``).
BUILDABLE: Tuple[str, ...] = ("ntrex", "tico19", "flores", "afriqa")
#: The values of a gap study's ``config.collection.builder`` (:func:`study_collection_dir`).
STUDY_BUILDERS: Tuple[str, ...] = ("ntrex", "dir")
#: The names ``config.data.overlap_collections`` takes beside folders and ``irds:`` ids.
GUARD_NAMES: Tuple[str, ...] = ("afriqa",)


def parse_names(value) -> Tuple[str, ...]:
  """A config list field -> its stripped, non-empty items: a tuple or list (each item may itself
  be a comma string, as ml_collections passes ``--config.x=a,b``) or a comma string."""
  items = (value,) if isinstance(value, str) else tuple(value or ())
  return tuple(x.strip() for item in items for x in str(item).split(",") if x.strip())


#: The fields of a ``config.evals.<name>`` entry (``high``: only for ``flores_devtest``).
EVAL_FIELDS: Tuple[str, ...] = ("type", "root", "langs", "high")


def evals(config) -> Dict[str, dict]:
  """``config.evals`` as ``{name: {"type", "root", "langs", ["high"]}}``, in declaration order.
  A config recorded before ``config.evals`` existed (its ``retrieval.collections`` and the
  ``retrieval.<prefix>_root / _langs / _high`` fields) reads as the same declarations."""
  if "evals" in config:
    return {name: dict(e) for name, e in config.evals.items()}
  r = config.get("retrieval", {})
  out = {}
  for name in parse_names(r.get("collections", ())):
    spec = REGISTRY.get(name)
    prefix = spec.legacy if spec is not None else ""
    e = {"type": name, "root": r.get(f"{prefix}_root", ""), "langs": r.get(f"{prefix}_langs", ())}
    if f"{prefix}_high" in r:
      e["high"] = r.get(f"{prefix}_high")
    out[name] = e
  return out


def dev_checks(config) -> Tuple[str, ...]:
  """The names of ``config.evals`` (:func:`evals`)."""
  return tuple(evals(config))


def eval_type(config, name: str) -> str:
  """``config.evals.<name>.type``."""
  declared = evals(config)
  if name not in declared:
    raise ValueError(f"config.evals has no {name!r}; it declares {tuple(declared)}")
  return str(declared[name].get("type", ""))


def eval_langs(config, name: str) -> Tuple[str, ...]:
  """``config.evals.<name>.langs``, parsed (:func:`parse_names`)."""
  eval_type(config, name)
  return parse_names(evals(config)[name].get("langs", ()))


def select(config, names: Sequence[str]):
  """A copy of ``config`` whose ``config.evals`` keeps only ``names`` (each one it declares),
  in that order; a config recorded before ``config.evals`` gets its declarations so."""
  import ml_collections  # pylint: disable=import-outside-toplevel

  declared = evals(config)
  unknown = [n for n in names if n not in declared]
  if unknown:
    raise ValueError(f"config.evals has no {unknown[0]!r}; it declares {tuple(declared)}")
  out = ml_collections.ConfigDict(config.to_dict())
  with out.unlocked():
    out.evals = ml_collections.ConfigDict({n: declared[n] for n in names})
  return out


def root(config, name: str) -> pathlib.Path:
  """The data folder of ``config.evals.<name>``: its ``root``, or its type's folder under
  ``config.data.shared_root``; a registry name that no eval declares: its folder there."""
  declared = evals(config)
  if name in declared:
    given, spec = declared[name].get("root", ""), REGISTRY[eval_type(config, name)]
  else:
    given, spec = "", REGISTRY[name]
  return pathlib.Path(given) if given else pathlib.Path(config.data.shared_root) / spec.folder


def load_dev_collection(name: str, config):
  """(collection, query languages, high-resource languages) of ``config.evals.<name>``, a
  development check that is a collection (type ``afriqa`` or ``flores_devtest``)."""
  kind = eval_type(config, name)
  spec = REGISTRY.get(kind)
  if spec is None or not spec.dev_check or spec.load is None:
    collections = tuple(n for n in DEV_CHECKS if REGISTRY[n].load is not None)
    raise ValueError(
      f"config.evals.{name}.type={kind!r}: not a collection; expected one of {collections} "
      "('tatoeba' is a bitext-matching check)"
    )
  e = evals(config)[name]
  langs = list(parse_names(e.get("langs", ())))
  high = list(parse_names(e.get("high", ())))
  return spec.load(root(config, name), langs), langs, high


def guard_collections(config) -> list:
  """The texts of every check in ``config.evals``, as collections for the
  overlap guard (``data/overlap.py``): bitext must not repeat what is evaluated. Tatoeba's
  pairs become a collection whose documents are the English sides and queries the foreign."""
  out = []
  for name in dev_checks(config):
    spec = REGISTRY.get(eval_type(config, name))
    if spec is None or spec.kind != BITEXT_MATCHING:
      out.append(load_dev_collection(name, config)[0])
      continue
    from optical_jax.data.bitext import read_tatoeba  # pylint: disable=import-outside-toplevel

    docs, queries = {}, {}
    for lang in eval_langs(config, name):
      pairs = read_tatoeba(root(config, name), lang).pairs
      docs.update({f"{lang}-{i}": p.english for i, p in enumerate(pairs)})
      queries[lang] = {f"{lang}-{i}": p.foreign for i, p in enumerate(pairs)}
    out.append(Collection(name=name, doc_ids=list(docs), docs=docs, queries=queries, qrels={}))
  return out


def guard_collection(spec, shared_root: PathLike) -> Collection:
  """One entry of ``config.data.overlap_collections`` as the overlap guard reads it: ``afriqa``
  (the AfriQA dev collection of ``<shared_root>/afriqa_dev``, built in memory), a collection
  folder or ``irds:<id>``, named as given (the guard's messages and the manifest show that);
  a ``Collection`` comes back as it is."""
  if not isinstance(spec, (str, os.PathLike)):
    return spec
  if str(spec) in GUARD_NAMES:
    coll = REGISTRY[str(spec)].load(pathlib.Path(shared_root) / REGISTRY[str(spec)].folder, None)
  else:
    coll = load_collection(spec)
  return dataclasses.replace(coll, name=str(spec))


def load_collection(
  path: PathLike,
  langs: Optional[Sequence[str]] = None,
  topics_file: Optional[PathLike] = None,
  topics_lang: Optional[str] = None,
  topic_field: str = "title",
  download: bool = False,
) -> Collection:
  """A collection folder (:func:`collection_format.read_collection`, with its arguments) or an
  ``irds:<id>`` dataset (:func:`irds.load_irds`; ``download``: let ``ir_datasets`` download
  missing files)."""
  if str(path).startswith(irds.PREFIX):
    return irds.load_irds(str(path)[len(irds.PREFIX) :], langs, download)
  return read_collection(path, langs, topics_file, topics_lang, topic_field)


def build(name: str, source: PathLike, out: PathLike, langs: Sequence[str], **options):
  """Writes collection ``name`` of ``source`` to ``out`` (the command's work; ``options``: the
  collection's own flags, ``overwrite``) -> {folder written: Collection}."""
  spec = REGISTRY[name]
  if spec.build is not None:
    return spec.build(source, out, langs, **options)
  coll = spec.load(source, list(langs) or None, **options)
  write_collection(coll, out, overwrite=options.get("overwrite", False))
  return {str(out): coll}


def study_collection_dir(
  collection_config, out: pathlib.Path, langs: Sequence[str]
) -> pathlib.Path:
  """The folder of a gap study's collection (``config.collection`` of configs/gap_study.py):
  ``builder='dir'``: ``source`` itself; ``builder='ntrex'``: NTREX-128 of ``source`` built into
  ``out`` unless it is there already."""
  c = collection_config
  if c.builder == "dir":
    return pathlib.Path(c.source)
  if c.builder != "ntrex":
    raise ValueError(f"config.collection.builder={c.builder!r}; expected 'ntrex' or 'dir'")
  if not (out / "qrels.txt").is_file():
    if not pathlib.Path(c.source).is_dir():
      raise FileNotFoundError(f"NTREX-128 not found at {c.source} (config.collection.source)")
    REGISTRY["ntrex"].build(c.source, out, langs, with_title=c.with_title)
  return out
