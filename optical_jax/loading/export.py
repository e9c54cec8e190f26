"""Writes an encoder back out as an HF checkpoint directory.

The inverse of :func:`optical_jax.loading.hf.convert_state_dict`: a trained
student becomes ``config.json`` + ``model.safetensors`` + ``tokenizer.json``
that both :func:`optical_jax.loading.load_encoder` and ``transformers``
(``BertModel`` / ``XLMRobertaModel`` / ``MPNetModel``) load. ``optical_jax.json`` records what
HF files cannot: pooling, prefixes, the teacher it was distilled from, and
whether a retrieval head (``head.safetensors``) exists, and the width of an output projection
into a teacher's space (``projection.safetensors``, ``EncoderConfig.output_dim``): HF classes do
not have one, so ``transformers`` loads such a student without it.

The same directory is a sentence-transformers model (``loading/st_files.py``: modules, pooling,
the projection as a Dense module, normalisation, the prefixes as prompts), so
``SentenceTransformer(directory)`` gives our sentence vectors, and carries a model card
(``README.md``, ``loading/model_card.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from optical_jax.io import new_folder_beside, replace_folder
from optical_jax.loading.hf import RELATIVE_BIAS, layer_names
from optical_jax.loading.model_card import render_model_card
from optical_jax.loading.st_files import write_sentence_transformers_files
from optical_jax.models.config import EncoderConfig

META_FILE = "optical_jax.json"


def hf_config_dict(cfg: EncoderConfig) -> dict:
  """``config.json`` contents for ``cfg``."""
  model_type, arch = {
    "bert": ("bert", "BertModel"),
    "xlm-roberta": ("xlm-roberta", "XLMRobertaModel"),
    "mpnet": ("mpnet", "MPNetModel"),
  }[cfg.family]
  out = {
    "model_type": model_type,
    "architectures": [arch],
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.hidden_size,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "intermediate_size": cfg.intermediate_size,
    "max_position_embeddings": cfg.max_position_embeddings,
    "type_vocab_size": cfg.type_vocab_size,
    "layer_norm_eps": cfg.layer_norm_eps,
    "pad_token_id": cfg.pad_token_id,
    "hidden_act": cfg.hidden_act,
    "hidden_dropout_prob": cfg.dropout_rate,
    "attention_probs_dropout_prob": 0.0,
    "position_embedding_type": "absolute",
  }
  if cfg.family == "mpnet":
    del out["type_vocab_size"]
    out["relative_attention_num_buckets"] = cfg.relative_attention_num_buckets
  return out


def export_state_dict(params, cfg: EncoderConfig) -> dict:
  """Our ``{"params": ...}`` tree -> HF names in torch layout (float32 numpy)."""
  p = params["params"]
  np32 = lambda x: np.ascontiguousarray(np.asarray(x, np.float32))
  emb = p["embeddings"]
  sd = {
    "embeddings.word_embeddings.weight": np32(emb["word_embeddings"]["embedding"]),
    "embeddings.position_embeddings.weight": np32(emb["position_embeddings"]["embedding"]),
    "embeddings.LayerNorm.weight": np32(emb["layer_norm"]["scale"]),
    "embeddings.LayerNorm.bias": np32(emb["layer_norm"]["bias"]),
  }
  if cfg.type_vocab_size:
    sd["embeddings.token_type_embeddings.weight"] = np32(emb["token_type_embeddings"]["embedding"])
  if cfg.relative_attention_num_buckets:
    sd[RELATIVE_BIAS] = np32(p["relative_attention_bias"]["embedding"])
  layers = p["layers"]
  dense_names, norm_names = layer_names(cfg)
  for i in range(cfg.num_layers):
    for ours, hf in dense_names.items():
      node = layers["attention"][ours[-1]] if ours[0] == "attention" else layers[ours[0]]
      sd[f"encoder.layer.{i}.{hf}.weight"] = np32(np.asarray(node["kernel"][i]).T)
      sd[f"encoder.layer.{i}.{hf}.bias"] = np32(node["bias"][i])
    for ours, hf in norm_names.items():
      sd[f"encoder.layer.{i}.{hf}.weight"] = np32(layers[ours[0]]["scale"][i])
      sd[f"encoder.layer.{i}.{hf}.bias"] = np32(layers[ours[0]]["bias"][i])
  return sd


def save_hf_directory(
  directory,
  cfg: EncoderConfig,
  params,
  tokenizer,
  *,
  pooling: str,
  query_prefix: str = "",
  doc_prefix: str = "",
  head: Optional[dict] = None,
  extra_meta: Optional[dict] = None,
  normalize: bool = True,
) -> Path:
  """Writes the directory atomically (a temporary sibling renamed into place).

  ``normalize``: whether the model's sentence vectors are L2-normalised (every retrieval model
  here is scored by cosine), recorded in ``optical_jax.json`` and as the sentence-transformers
  Normalize module."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  target = Path(directory)
  tmp = new_folder_beside(target)
  try:
    (tmp / "config.json").write_text(json.dumps(hf_config_dict(cfg), indent=2))
    save_file(export_state_dict(params, cfg), str(tmp / "model.safetensors"))
    (tmp / "tokenizer.json").write_text(tokenizer.backend.to_str(), encoding="utf-8")
    meta = {
      "pooling": pooling,
      "query_prefix": query_prefix,
      "doc_prefix": doc_prefix,
      "max_length": tokenizer.max_length,
      "head": head is not None,
      "output_dim": cfg.output_dim,
      "normalize": bool(normalize),
      **(extra_meta or {}),
    }
    kernel = None
    if cfg.output_dim:
      kernel = np.asarray(params["params"]["output_projection"]["kernel"], np.float32)
      save_file({"kernel": kernel}, str(tmp / "projection.safetensors"))
    write_sentence_transformers_files(
      tmp,
      cfg,
      tokenizer,
      pooling=pooling,
      query_prefix=query_prefix,
      doc_prefix=doc_prefix,
      normalize=normalize,
      projection=kernel,
    )
    if head is not None:
      save_file({"kernel": np.asarray(head["kernel"], np.float32)}, str(tmp / "head.safetensors"))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    (tmp / "README.md").write_text(render_model_card(meta), encoding="utf-8")
    replace_folder(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return target
