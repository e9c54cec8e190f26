"""``random:tiny``: a built-in, randomly initialised small encoder and tokenizer.

For the tiny configs, the quick tests and a laptop: every code path of training, export and
evaluation in seconds, with no checkpoint on disk, no download and no torch. Nothing it computes
means anything.

* Tokenizer: byte-level (every UTF-8 byte of a text is one token, so any language tokenises
  without unknown tokens), with ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]`` and
  ``[CLS] ... [SEP]`` around each text; 260 ids.
* Encoder: the BERT family, 2 layers of width 32, 4 heads, MLP 64, 130 positions (128 tokens),
  parameters from ``Encoder.init`` with ``PRNGKey(seed)``; ``random:tiny:<seed>`` picks another
  seed (default 0). Mean pooling, no prefixes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

from optical_jax.models.config import EncoderConfig
from optical_jax.models.encoder import Encoder

PREFIX = "random:tiny"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def is_random_tiny(name: str) -> bool:
  """Whether ``name`` is ``random:tiny`` or ``random:tiny:<seed>``."""
  return name == PREFIX or name.startswith(PREFIX + ":")


def seed_of(name: str) -> int:
  """The seed of ``random:tiny[:<seed>]``; ValueError naming the bad part."""
  rest = name[len(PREFIX) :]
  if not rest:
    return 0
  try:
    return int(rest[1:])
  except ValueError:
    raise ValueError(f"{name}: expected {PREFIX} or {PREFIX}:<integer seed>") from None


def byte_tokenizer() -> tokenizers.Tokenizer:
  """The byte-level tokenizer: specials 0-3, then the 256 byte symbols of GPT-2's alphabet."""
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  vocab = {t: i for i, t in enumerate(list(SPECIALS) + sorted(alphabet))}
  tok = tokenizers.Tokenizer(models.BPE(vocab, merges=[], unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
  )
  return tok


def config(**overrides) -> EncoderConfig:
  """The encoder's shape (``overrides``: numerics such as dtype or remat)."""
  return EncoderConfig(
    family="bert",
    vocab_size=len(SPECIALS) + 256,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_position_embeddings=130,
    type_vocab_size=2,
    pad_token_id=0,
    **overrides,
  )


@functools.lru_cache(maxsize=8)
def _init(cfg: EncoderConfig):
  """The jitted initialiser of ``cfg`` (one compile per shape in a process: a job loads the
  random model several times, as teacher, student and evaluated model)."""
  return jax.jit(Encoder(cfg).init)


def params(cfg: EncoderConfig, seed: int):
  """Random parameters ``{"params": ...}`` for ``cfg`` (new arrays on every call)."""
  ids = jnp.zeros((1, 4), jnp.int32)
  return _init(cfg)(jax.random.PRNGKey(seed), ids, jnp.ones_like(ids))
