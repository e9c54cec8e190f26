"""Hugging Face checkpoint directories -> our Flax parameter tree.

A directory holds ``config.json``, weights (``model.safetensors``, sharded
``model.safetensors.index.json``, or ``pytorch_model.bin``) and tokenizer
files (``tokenizer.json``, or ``vocab.txt`` / ``sentencepiece.bpe.model``
that ``transformers`` converts to a fast tokenizer).

Weight names are matched strictly: every parameter our encoder needs must be
present with the right shape, and every tensor in the file must be either
used or on the documented ignore list (pooler, MLM/classification heads,
``position_ids`` buffers). Anything else raises an error naming the file and
the key; nothing is ever left at its random initialisation.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, Mapping, Tuple

import numpy as np

from optical_jax.loading.torch_pickle import load_torch_state_dict
from optical_jax.models.config import EncoderConfig

log = logging.getLogger(__name__)

#: Prefixes that task heads put before the encoder's own names.
_PREFIXES = ("bert.", "roberta.", "xlm_roberta.", "mpnet.", "model.", "encoder_model.")
#: Tensors a checkpoint may carry that an encoder does not use.
IGNORED = re.compile(
  r"^(pooler\.|cls\.|lm_head\.|classifier\.|qa_outputs\.|"
  r"embeddings\.position_ids$|embeddings\.token_type_ids$)"
)

# our leaf (per layer)                   HF name inside encoder.layer.{i}.
_LAYER_MAP = {
  ("attention", "query"): "attention.self.query",
  ("attention", "key"): "attention.self.key",
  ("attention", "value"): "attention.self.value",
  ("attention", "out"): "attention.output.dense",
  ("mlp_in",): "intermediate.dense",
  ("mlp_out",): "output.dense",
}
_LAYER_NORMS = {
  ("attention_norm",): "attention.output.LayerNorm",
  ("mlp_norm",): "output.LayerNorm",
}
# MPNet names the same pieces differently (HF MPNetLayer).
_MPNET_LAYER_MAP = {
  ("attention", "query"): "attention.attn.q",
  ("attention", "key"): "attention.attn.k",
  ("attention", "value"): "attention.attn.v",
  ("attention", "out"): "attention.attn.o",
  ("mlp_in",): "intermediate.dense",
  ("mlp_out",): "output.dense",
}
_MPNET_LAYER_NORMS = {("attention_norm",): "attention.LayerNorm", ("mlp_norm",): "output.LayerNorm"}
#: MPNet's relative-position bias table [buckets, heads], shared by the layers.
RELATIVE_BIAS = "encoder.relative_attention_bias.weight"


def layer_names(cfg: EncoderConfig):
  """(dense layers, layer norms): our per-layer leaf -> the HF name inside encoder.layer.{i}."""
  if cfg.family == "mpnet":
    return _MPNET_LAYER_MAP, _MPNET_LAYER_NORMS
  return _LAYER_MAP, _LAYER_NORMS


def _canonical(name: str) -> str:
  name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
    "LayerNorm.beta", "LayerNorm.bias"
  )
  for p in _PREFIXES:
    if name.startswith(p):
      return name[len(p) :]
  return name


def expected_shapes(cfg: EncoderConfig) -> Dict[str, Tuple[int, ...]]:
  """HF name -> torch-layout shape of every tensor the encoder needs."""
  d, f = cfg.hidden_size, cfg.intermediate_size
  out = {
    "embeddings.word_embeddings.weight": (cfg.vocab_size, d),
    "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, d),
    "embeddings.LayerNorm.weight": (d,),
    "embeddings.LayerNorm.bias": (d,),
  }
  if cfg.type_vocab_size:
    out["embeddings.token_type_embeddings.weight"] = (cfg.type_vocab_size, d)
  if cfg.relative_attention_num_buckets:
    out[RELATIVE_BIAS] = (cfg.relative_attention_num_buckets, cfg.num_heads)
  dense_shapes = {"mlp_in": (f, d), "mlp_out": (d, f)}
  dense_names, norm_names = layer_names(cfg)
  for i in range(cfg.num_layers):
    for ours, hf in dense_names.items():
      w = dense_shapes.get(ours[0], (d, d))
      out[f"encoder.layer.{i}.{hf}.weight"] = w
      out[f"encoder.layer.{i}.{hf}.bias"] = (w[0],)
    for hf in norm_names.values():
      out[f"encoder.layer.{i}.{hf}.weight"] = (d,)
      out[f"encoder.layer.{i}.{hf}.bias"] = (d,)
  return out


def convert_state_dict(
  state_dict: Mapping[str, np.ndarray], cfg: EncoderConfig, source: str = "state dict"
) -> dict:
  """HF ``BertModel``/``XLMRobertaModel``/``MPNetModel`` state dict -> our params tree (float32).

  Raises:
    ValueError: naming ``source`` and the keys, for missing, unexpected or
      mis-shaped tensors.
  """
  sd: Dict[str, np.ndarray] = {}
  ignored = []
  for k, v in state_dict.items():
    c = _canonical(k)
    if IGNORED.match(c):
      ignored.append(k)
    else:
      sd[c] = v
  want = expected_shapes(cfg)
  missing = sorted(set(want) - set(sd), key=_natural)
  unexpected = sorted(set(sd) - set(want), key=_natural)
  if missing:
    raise ValueError(
      f"{source}: missing weights {_clip(missing)} (needed by a {cfg.family} encoder "
      f"with {cfg.num_layers} layers)"
    )
  if unexpected:
    raise ValueError(
      f"{source}: unexpected weights {_clip(unexpected)}; the encoder would not use "
      "them (wrong model_type or num_hidden_layers in config.json?)"
    )
  for k, shape in want.items():
    if tuple(sd[k].shape) != shape:
      raise ValueError(
        f"{source}: weight {k!r} has shape {tuple(sd[k].shape)}, config.json implies {shape}"
      )
  if ignored:
    log.info(
      "%s: ignoring %d tensors not used by the encoder (%s)",
      source,
      len(ignored),
      _clip(sorted(ignored), 4),
    )

  f32 = lambda k: np.asarray(sd[k], dtype=np.float32)
  layer = lambda i, hf, leaf: f32(f"encoder.layer.{i}.{hf}.{leaf}")
  stack = lambda hf, leaf, t=False: np.stack(
    [layer(i, hf, leaf).T if t else layer(i, hf, leaf) for i in range(cfg.num_layers)]
  )
  layers: dict = {"attention": {}}
  dense_names, norm_names = layer_names(cfg)
  for ours, hf in dense_names.items():
    node = layers["attention"] if ours[0] == "attention" else layers
    node[ours[-1]] = {"kernel": stack(hf, "weight", t=True), "bias": stack(hf, "bias")}
  for ours, hf in norm_names.items():
    layers[ours[0]] = {"scale": stack(hf, "weight"), "bias": stack(hf, "bias")}
  embeddings = {
    "word_embeddings": {"embedding": f32("embeddings.word_embeddings.weight")},
    "position_embeddings": {"embedding": f32("embeddings.position_embeddings.weight")},
    "layer_norm": {
      "scale": f32("embeddings.LayerNorm.weight"),
      "bias": f32("embeddings.LayerNorm.bias"),
    },
  }
  if cfg.type_vocab_size:
    embeddings["token_type_embeddings"] = {
      "embedding": f32("embeddings.token_type_embeddings.weight")
    }
  params = {"embeddings": embeddings, "layers": layers}
  if cfg.relative_attention_num_buckets:
    params["relative_attention_bias"] = {"embedding": f32(RELATIVE_BIAS)}
  return {"params": params}


def _natural(s: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _clip(keys, n: int = 6) -> str:
  shown = ", ".join(repr(k) for k in keys[:n])
  return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def read_config(directory: Path) -> dict:
  path = directory / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"{directory}: no config.json; not an HF checkpoint directory")
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from e


def read_weights(directory: Path) -> Tuple[Dict[str, np.ndarray], str]:
  """Reads the weights of an HF directory. Returns (state dict, file name)."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

  st = directory / "model.safetensors"
  index = directory / "model.safetensors.index.json"
  binf = directory / "pytorch_model.bin"
  if st.is_file():
    return _read_safetensors(st, load_file), str(st)
  if index.is_file():
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    sd = {}
    for shard in shards:
      sd.update(_read_safetensors(directory / shard, load_file))
    return sd, str(index)
  if binf.is_file():
    return load_torch_state_dict(binf), str(binf)
  raise FileNotFoundError(
    f"{directory}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin"
  )


def _read_safetensors(path: Path, load_file) -> Dict[str, np.ndarray]:
  try:
    return load_file(str(path))
  except Exception as e:  # safetensors raises its own SafetensorError
    raise ValueError(f"{path}: cannot read safetensors file ({e})") from e


def read_tokenizer_backend(directory: Path):
  """A ``tokenizers.Tokenizer`` from ``tokenizer.json`` or the slow files."""
  import tokenizers  # pylint: disable=import-outside-toplevel

  tj = directory / "tokenizer.json"
  if tj.is_file():
    try:
      return tokenizers.Tokenizer.from_file(str(tj)), str(tj)
    except Exception as e:  # tokenizers raises a bare Exception subclass
      raise ValueError(f"{tj}: cannot read tokenizer ({e})") from e
  if not any(
    (directory / f).is_file()
    for f in ("vocab.txt", "sentencepiece.bpe.model", "tokenizer.model", "spiece.model")
  ):
    raise FileNotFoundError(
      f"{directory}: no tokenizer files (tokenizer.json, vocab.txt or sentencepiece.bpe.model)"
    )
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

  tok = AutoTokenizer.from_pretrained(str(directory))
  return tok.backend_tokenizer, str(directory)
