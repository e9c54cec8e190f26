"""What a training work directory holds, so that a run never resumes or relabels another's.

A work dir's ``identity.json`` records everything that determines its checkpoints: the config
minus purely operational fields (:data:`OPERATIONAL`; evaluation settings, which only change
what is reported about the same weights, are also left out), the sha256 of the training and test
pairs (``bitext_manifest.json``), a hash of the teacher's parameters and, for models given as
HF folders by path, the sha256 of those folders' files (``files``; packaged models are pinned
instead, ``loading/verify.py``; a dir recorded before ``files`` existed is not refused for lacking
it). A run in a dir whose
identity differs stops with one line naming the differing fields, before anything in the dir is
written or deleted; so does a dir that holds checkpoints but no identity (written by another
version, or not by train.py).

Checks happen as each part becomes known: the config first, the data after the bitext is read
(before any model loads), the model after it loads (before any training).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from optical_jax.errors import UsageError
from optical_jax.io import atomic_write_text

#: Config fields that do not change the trained weights: logging, checkpoint cadence, how the
#: step is laid out on devices, and every evaluation/export setting (re-running a finished dir
#: with other ones re-evaluates the same weights, and its config.json says which were used).
OPERATIONAL = (
  "train.log_every",
  "train.checkpoint_every",
  "train.keep_checkpoints",
  "train.async_checkpointing",
  "train.tensorboard",
  "train.interpolation",
  "train.unpad",
  "train.unpad_multiple",
  "mesh",
  "distributed",
  "remat",
  "layer_unroll",
  "attention",
  "eval",
  "retrieval",
  "evals",
  "data.shared_root",
)

FILE = "identity.json"


def _flatten(d, prefix="") -> Dict[str, object]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


#: The gap study's fields that do not change a cell (cells are keyed by encoder, method and
#: language, so adding one is a new cell; the rest only changes the analysis and report), plus
#: the operational fields of its training config (``distill.``).
STUDY_OPERATIONAL = (
  "encoders",
  "methods",
  "low",
  "high",
  "eval.batch_size",
  "eval.bootstrap_samples",
  "eval.metric",
) + tuple(f"distill.{f}" for f in OPERATIONAL)


def _operational(key: str, fields) -> bool:
  return any(key == f or key.startswith(f + ".") for f in fields)


def config_identity(config, operational=OPERATIONAL) -> Dict[str, object]:
  """The config fields that determine a run's weights (or, with :data:`STUDY_OPERATIONAL`, a
  study's cells), flattened to ``section.field``."""
  flat = _flatten(json.loads(config.to_json_best_effort()))
  return {k: v for k, v in sorted(flat.items()) if not _operational(k, operational)}


def _load(work: Path) -> Optional[dict]:
  path = Path(work) / FILE
  if not path.is_file():
    return None
  return json.loads(path.read_text(encoding="utf-8"))


#: Fields added to the config after work dirs recorded their identity, each with the value that
#: gives the behaviour of the code before it: a dir whose identity lacks the field matches a
#: config that holds this value (so adding a field does not orphan finished runs).
ADDED_FIELDS = {
  "teacher.model": "",
  "teacher.projection_fit_texts": 8192,
  "data.overlap_near": 0.0,
  "distill.contrastive_ranker": "dense",
  "distill.contrastive_reverse": 0.0,
  "distill.contrastive_bank_sample": 0,
  "distill.contrastive_bank_hard": 0,
}


def _differences(old: Dict[str, object], new: Dict[str, object]) -> List[str]:
  keys = sorted(set(old) | set(new))
  missing = object()
  old = {**{k: v for k, v in ADDED_FIELDS.items() if k in new}, **old}
  return [
    f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
    for k in keys
    if old.get(k, missing) != new.get(k, missing)
  ]


class IdentityError(UsageError):
  """A work dir holds a run that is not this one."""


def _refuse(work: Path, what: str, diffs: List[str]) -> None:
  shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
  raise IdentityError(
    f"{work} holds a run with another {what} ({shown}); use another --workdir, "
    f"or delete {work} to start this run there"
  )


def check(
  work: Path,
  config=None,
  data: Optional[Dict[str, str]] = None,
  model: Optional[str] = None,
  operational=OPERATIONAL,
  files: Optional[Dict[str, Dict[str, str]]] = None,
) -> None:
  """Raises :class:`IdentityError` when ``work``'s recorded identity disagrees with any part
  given (``config``; ``data``: ``{"train_sha256", "test_sha256"}``; ``model``: a parameter
  hash; ``files``: ``{HF folder: {file: sha256}}``), or when ``work`` has checkpoints but no
  identity. Writes nothing."""
  work = Path(work)
  old = _load(work)
  if old is None:
    ck = work / "checkpoints"
    if ck.is_dir() and any(ck.iterdir()):
      raise IdentityError(
        f"{work} has checkpoints but no {FILE} (written by another version or "
        f"program): its weights cannot be attributed; use another --workdir, or "
        f"delete {work}"
      )
    return
  if config is not None:
    diffs = _differences(old.get("config", {}), config_identity(config, operational))
    if diffs:
      _refuse(work, "config", diffs)
  if data is not None and old.get("data") not in (None, data):
    what = "collection" if any(k.startswith("collection/") for k in data) else "training data"
    _refuse(work, what, _differences(old["data"], data))
  if model is not None and old.get("model") not in (None, model):
    _refuse(work, "model", [f"parameter hash {old['model']} -> {model}"])
  if files is not None and old.get("files") not in (None, files):
    before = {f"{d}/{n}": h for d, names in old["files"].items() for n, h in names.items()}
    after = {f"{d}/{n}": h for d, names in files.items() for n, h in names.items()}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    _refuse(work, "model folder", [f"{k} changed" for k in changed])


def record(
  work: Path,
  config,
  data: Optional[Dict[str, str]] = None,
  model: Optional[str] = None,
  operational=OPERATIONAL,
  files: Optional[Dict[str, Dict[str, str]]] = None,
) -> None:
  """Checks, then writes ``work/identity.json`` (atomically; unchanged when already there).
  ``files`` is written only when given (the gap study records none)."""
  check(work, config, data, model, operational, files)
  record = {"config": config_identity(config, operational), "data": data, "model": model}
  if files is not None:
    record["files"] = files
  atomic_write_text(Path(work) / FILE, json.dumps(record, indent=1))
