"""Encoder hyper-parameters, and their translation from HF `config.json` files.

One frozen dataclass describes both families we support:

* BERT family (mBERT, multilingual-e5, LaBSE, MiniLM): absolute positions
  ``0..T-1``, ``type_vocab_size`` token types (we always feed type 0).
* XLM-RoBERTa family: positions start past the padding index
  (``pad_token_id + 1``) and padding tokens get position ``pad_token_id``,
  exactly as HF's ``create_position_ids_from_input_ids``; one token type.
* MPNet (all-mpnet-base-v2): positions as XLM-R, no token types, and a learned
  relative-position bias added to every layer's attention logits
  (``relative_attention_num_buckets`` buckets of ``j - i``, shared by the layers).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

#: HF ``model_type`` values we can load, mapped to our family name.
SUPPORTED_MODEL_TYPES = {
  "bert": "bert",
  "xlm-roberta": "xlm-roberta",
  "roberta": "xlm-roberta",  # same layout; XLM-R is a multilingual RoBERTa
  "mpnet": "mpnet",
}
FAMILIES = ("bert", "xlm-roberta", "mpnet")

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape and numerics of a transformer encoder.

  Attributes:
    family: ``"bert"``, ``"xlm-roberta"`` or ``"mpnet"`` (decides position ids and the
      relative-position bias).
    vocab_size: rows of the word-embedding table.
    hidden_size: model width ``d``.
    num_layers: transformer blocks.
    num_heads: attention heads; ``hidden_size % num_heads == 0``.
    intermediate_size: MLP width.
    max_position_embeddings: rows of the position table.
    type_vocab_size: rows of the token-type table (0 = none, MPNet).
    layer_norm_eps: LayerNorm epsilon.
    pad_token_id: padding id (XLM-R and MPNet position ids depend on it).
    relative_attention_num_buckets: MPNet's relative-position buckets (0 = no bias).
    relative_max_distance: distance from which buckets are all the same (MPNet: 128).
    output_dim: width of a bias-free linear map applied to the last layer's states (0 = none):
      a student distilled from a teacher of another width carries it into the teacher's space
      (``config.teacher.model``); ``hidden_states`` stay the blocks' own, ``last_hidden_state``
      is ``[B, T, output_dim]``. Not part of the HF checkpoint (``projection.safetensors``).
    hidden_act: ``"gelu"`` (exact, erf) or ``"gelu_new"``/``"gelu_pytorch_tanh"``.
    dtype: compute dtype name (``"float32"`` or ``"bfloat16"``); parameters
      always stay float32.
    dropout_rate: dropout on the embedding, attention-output and MLP-output
      residual branches when ``deterministic=False`` (HF's
      ``hidden_dropout_prob``). Attention-probability dropout is not applied:
      fused attention kernels do not support it.
    remat: rematerialise each block in the backward pass (saves activation
      memory for more compute; ``docs/PERFORMANCE.md``).
    layer_unroll: layers per iteration of the layer loop (``nn.scan``'s
      ``unroll``); 0 = all of them (a straight-line program). The parameter
      tree is the same either way. Unrolled is faster on CPU: the OT train
      step of e5-small took 1.11 s instead of 1.27 s, of an mBERT-base shape
      3.41 s instead of 4.21 s (the rolled loop stacks every layer's
      residuals and gradients with dynamic-update-slices); 1 compiles a
      single block (use it when compile time matters, e.g. deep models on TPU).
    attention: ``"auto"``, ``"custom"``, ``"xla"`` or ``"cudnn"`` (``models/attention.py``):
      the hand-written backward pass, or ``jax.nn.dot_product_attention``; ``"auto"`` takes the
      first on CPU and lets JAX choose (cuDNN on GPUs) elsewhere.
  """

  family: str = "bert"
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  relative_attention_num_buckets: int = 0
  relative_max_distance: int = 128
  output_dim: int = 0
  hidden_act: str = "gelu"
  dtype: str = "float32"
  dropout_rate: float = 0.0
  remat: bool = False
  layer_unroll: int = 0
  attention: str = "auto"

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"unknown encoder family {self.family!r}; expected one of {FAMILIES}")
    if (self.family == "mpnet") != (self.relative_attention_num_buckets > 0):
      raise ValueError(
        "relative_attention_num_buckets must be > 0 for the mpnet family and 0 "
        f"otherwise (got {self.relative_attention_num_buckets} for {self.family})"
      )
    if self.output_dim < 0:
      raise ValueError(f"output_dim must be >= 0 (0 = no output projection), got {self.output_dim}")
    if self.hidden_size % self.num_heads:
      raise ValueError(
        f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
      )
    if self.dtype not in _DTYPES:
      raise ValueError(f"dtype {self.dtype!r} not in {sorted(_DTYPES)}")
    if self.attention not in ("auto", "custom", "xla", "cudnn"):
      raise ValueError(f"attention {self.attention!r} not in ('auto', 'custom', 'xla', 'cudnn')")
    if not 0 <= self.layer_unroll:
      raise ValueError(f"layer_unroll must be >= 0 (0 = all layers), got {self.layer_unroll}")
    if self.hidden_act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"hidden_act {self.hidden_act!r} is not supported")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def output_size(self) -> int:
    """Width of ``last_hidden_state``: ``output_dim`` if set, else ``hidden_size``."""
    return self.output_dim or self.hidden_size

  @property
  def compute_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def position_offset(self) -> int:
    """First position id of a real token (0 for BERT, pad+1 for XLM-R and MPNet)."""
    return 0 if self.family == "bert" else self.pad_token_id + 1

  @property
  def max_length(self) -> int:
    """Longest input (tokens, specials included) the position table allows."""
    return self.max_position_embeddings - self.position_offset

  def replace(self, **kw) -> "EncoderConfig":
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "EncoderConfig":
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields
    if unknown:
      raise ValueError(f"unknown EncoderConfig fields {sorted(unknown)}")
    return cls(**d)

  @classmethod
  def from_hf(
    cls, hf: Mapping[str, Any], source: str = "config.json", **overrides
  ) -> "EncoderConfig":
    """Builds a config from an HF ``config.json`` dict.

    Raises:
      ValueError: naming ``source`` and the key, for an unsupported
        ``model_type`` or a missing required key.
    """
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
      raise ValueError(
        f"{source}: model_type {model_type!r} is not supported; expected one of "
        f"{sorted(SUPPORTED_MODEL_TYPES)}"
      )
    required = (
      "vocab_size",
      "hidden_size",
      "num_hidden_layers",
      "num_attention_heads",
      "intermediate_size",
      "max_position_embeddings",
    )
    for key in required:
      if key not in hf:
        raise ValueError(f"{source}: required key {key!r} is missing")
    act = hf.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"{source}: hidden_act {act!r} is not supported")
    pe_type = hf.get("position_embedding_type", "absolute")
    if pe_type != "absolute":
      raise ValueError(
        f"{source}: position_embedding_type {pe_type!r} is not supported (only 'absolute')"
      )
    kw = dict(
      family=SUPPORTED_MODEL_TYPES[model_type],
      vocab_size=int(hf["vocab_size"]),
      hidden_size=int(hf["hidden_size"]),
      num_layers=int(hf["num_hidden_layers"]),
      num_heads=int(hf["num_attention_heads"]),
      intermediate_size=int(hf["intermediate_size"]),
      max_position_embeddings=int(hf["max_position_embeddings"]),
      type_vocab_size=0 if model_type == "mpnet" else int(hf.get("type_vocab_size", 2)),
      layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
      pad_token_id=int(
        hf.get("pad_token_id")
        if hf.get("pad_token_id") is not None
        else (1 if model_type != "bert" else 0)
      ),
      hidden_act=act,
      relative_attention_num_buckets=(
        int(hf.get("relative_attention_num_buckets", 32)) if model_type == "mpnet" else 0
      ),
      dropout_rate=float(hf.get("hidden_dropout_prob", 0.0)),
    )
    kw.update(overrides)
    return cls(**kw)
