"""The sentence-transformers files of an exported encoder.

:func:`write_sentence_transformers_files` adds to an HF checkpoint directory what
``SentenceTransformer(directory)`` reads to compute the same sentence vectors as
:func:`optical_jax.encode.encode_texts` (``side`` given: the model's pooling and prefix; tested to
1e-5):

* ``modules.json``: Transformer -> Pooling -> [Dense] -> [Normalize], in the module names every
  sentence-transformers release since 2.x resolves (``sentence_transformers.models.*``).
* ``sentence_bert_config.json``: ``max_seq_length`` (the tokenizer's limit, specials included)
  and ``do_lower_case`` (false: the tokenizer's own normaliser already does what the model needs).
* ``1_Pooling/config.json``: the model's pooling (``mean`` or ``cls``), prompt tokens included
  in the mean as :func:`optical_jax.encode.encode_texts` includes the prefix.
* ``2_Dense/``: the output projection into a teacher's space (``EncoderConfig.output_dim``),
  bias-free with the identity activation, ``linear.weight [output_dim, hidden]`` in
  ``model.safetensors``. Our encoder applies it to every token state before pooling; mean and
  CLS pooling are linear, so pooling then projecting gives the same vector.
* ``Normalize``: where the model's sentence vectors are L2-normalised (every retrieval model here:
  the dense ranker scores cosines).
* ``config_sentence_transformers.json``: the prompts ``query`` / ``passage`` (the model's
  recorded prefixes, ``query: `` / ``passage: `` for E5 models, empty strings elsewhere, so
  ``prompt_name="query"`` works on every export) and ``document`` (= ``passage``:
  sentence-transformers >= 5 adds an empty ``document`` prompt to a model without one and its
  ``encode_document`` takes that one first), no default prompt, the similarity function.
* ``tokenizer_config.json``: ``PreTrainedTokenizerFast`` over ``tokenizer.json`` with the model's
  length limit (``model_max_length``) and its special tokens (padding among them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from optical_jax.models.config import EncoderConfig
from optical_jax.tokenization import Tokenizer

#: The module types of modules.json (each release maps these names to its own classes).
TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
DENSE = "sentence_transformers.models.Dense"
NORMALIZE = "sentence_transformers.models.Normalize"
#: The identity activation of the Dense module, by the name sentence-transformers imports.
IDENTITY = "torch.nn.modules.linear.Identity"


def _dump(path: Path, obj) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def special_tokens(tokenizer: Tokenizer) -> Dict[str, str]:
  """The special tokens of ``tokenizer`` by their ``transformers`` role: ``cls_token`` and
  ``sep_token`` (the first and last token the post-processor puts around a text), ``pad_token``
  (the padding id), ``unk_token`` and ``mask_token`` where the vocabulary has one."""
  backend = tokenizer.backend
  enc = backend.encode("")
  added = [backend.id_to_token(i) for i, s in zip(enc.ids, enc.special_tokens_mask) if s]
  out = {}
  if added:
    out["cls_token"], out["sep_token"] = added[0], added[-1]
    if len(added) == 1:
      del out["sep_token"]
  pad = backend.id_to_token(tokenizer.pad_id)
  if pad is not None:
    out["pad_token"] = pad
  vocab = backend.get_vocab(with_added_tokens=True)
  for role, names in (("unk_token", ("[UNK]", "<unk>")), ("mask_token", ("[MASK]", "<mask>"))):
    found = [n for n in names if n in vocab]
    if found:
      out[role] = found[0]
  return out


def pooling_config(pooling: str, width: int) -> dict:
  """``1_Pooling/config.json`` for ``"mean"`` or ``"cls"`` over ``width``-d token states."""
  if pooling not in ("mean", "cls"):
    raise ValueError(f"pooling {pooling!r}: sentence-transformers export takes 'mean' or 'cls'")
  return {
    "word_embedding_dimension": width,
    "pooling_mode_cls_token": pooling == "cls",
    "pooling_mode_mean_tokens": pooling == "mean",
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": False,
    "include_prompt": True,
  }


def write_sentence_transformers_files(
  directory,
  cfg: EncoderConfig,
  tokenizer: Tokenizer,
  *,
  pooling: str,
  query_prefix: str = "",
  doc_prefix: str = "",
  normalize: bool = True,
  projection: Optional[np.ndarray] = None,
) -> None:
  """Writes the files of the module docstring into ``directory`` (an HF checkpoint directory
  being built; the caller makes the whole directory appear atomically).

  Args:
    cfg: the encoder's config (``hidden_size``; ``output_dim`` with ``projection``).
    tokenizer: the model's tokenizer (its ``max_length`` and special tokens).
    pooling: ``"mean"`` or ``"cls"``.
    query_prefix / doc_prefix: the prompts ``query`` / ``passage`` (and ``document``).
    normalize: add the Normalize module (cosine similarity) or not (dot product).
    projection: ``[hidden_size, output_dim]`` float32 kernel of the output projection, if any.
  """
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  d = Path(directory)
  modules = [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}]
  modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING})
  _dump(d / "1_Pooling" / "config.json", pooling_config(pooling, cfg.hidden_size))
  if projection is not None:
    kernel = np.asarray(projection, np.float32)
    if kernel.shape != (cfg.hidden_size, cfg.output_dim):
      raise ValueError(
        f"projection kernel {kernel.shape}; expected {(cfg.hidden_size, cfg.output_dim)}"
      )
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": DENSE})
    dense = {
      "in_features": cfg.hidden_size,
      "out_features": cfg.output_dim,
      "bias": False,
      "activation_function": IDENTITY,
    }
    _dump(d / "2_Dense" / "config.json", dense)
    weight = np.ascontiguousarray(kernel.T)  # torch's Linear: [out_features, in_features]
    save_file({"linear.weight": weight}, str(d / "2_Dense" / "model.safetensors"))
  if normalize:
    i = len(modules)
    modules.append({"idx": i, "name": str(i), "path": f"{i}_Normalize", "type": NORMALIZE})
  _dump(d / "modules.json", modules)
  _dump(
    d / "sentence_bert_config.json",
    {"max_seq_length": tokenizer.max_length, "do_lower_case": False},
  )
  _dump(
    d / "config_sentence_transformers.json",
    {
      "model_type": "SentenceTransformer",
      "prompts": {"query": query_prefix, "document": doc_prefix, "passage": doc_prefix},
      "default_prompt_name": None,
      "similarity_fn_name": "cosine" if normalize else "dot",
    },
  )
  _dump(
    d / "tokenizer_config.json",
    {
      "tokenizer_class": "PreTrainedTokenizerFast",
      "model_max_length": tokenizer.max_length,
      "clean_up_tokenization_spaces": False,
      **special_tokens(tokenizer),
    },
  )
