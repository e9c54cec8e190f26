"""Builds small, randomly initialised HF checkpoint directories for tests.

Each directory is what ``save_pretrained`` writes (``config.json`` and
``model.safetensors``, or ``pytorch_model.bin`` through ``torch.save`` as
transformers < 5 wrote it) plus a ``tokenizer.json`` sized to the vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import tokenizers
from tokenizers import models, pre_tokenizers, processors

SMALL = dict(
  vocab_size=99,
  hidden_size=32,
  num_hidden_layers=2,
  num_attention_heads=4,
  intermediate_size=37,
  max_position_embeddings=64,
)


def _tokenizer(family: str, vocab_size: int) -> tokenizers.Tokenizer:
  if family == "bert":
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    words = [chr(ord("a") + i % 26) * (1 + i // 26) for i in range(vocab_size - len(specials))]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok
  specials = ["<s>", "<pad>", "</s>", "<unk>"]
  words = ["▁" + chr(ord("a") + i % 26) * (1 + i // 26) for i in range(vocab_size - len(specials))]
  pieces = [(t, 0.0) for t in specials] + [(w, -1.0 - 0.01 * i) for i, w in enumerate(words)]
  tok = tokenizers.Tokenizer(models.Unigram(pieces, unk_id=3))
  tok.pre_tokenizer = pre_tokenizers.Metaspace()
  tok.post_processor = processors.TemplateProcessing(
    single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
  )
  return tok


def make_checkpoint(
  directory: Path, family: str = "bert", fmt: str = "safetensors", seed: int = 0, **overrides
):
  """Writes a random ``BertModel``/``XLMRobertaModel``/``MPNetModel`` checkpoint (MPNet with
  the XLM-R-style tokenizer: the same specials, pad id 1). Returns the torch model. Without
  torch (the quick subset needs none: configs/tiny.py runs on random:tiny), the test asking for
  one is skipped."""
  import pytest  # pylint: disable=import-outside-toplevel

  torch = pytest.importorskip("torch", reason="HF checkpoint fixtures: pip install torch==2.13.0")
  import transformers

  torch.manual_seed(seed)
  kw = dict(SMALL, **overrides)
  if family == "bert":
    model = transformers.BertModel(transformers.BertConfig(**kw), add_pooling_layer=True)
  elif family == "mpnet":
    model = transformers.MPNetModel(transformers.MPNetConfig(**kw), add_pooling_layer=True)
  else:
    model = transformers.XLMRobertaModel(
      transformers.XLMRobertaConfig(**kw), add_pooling_layer=True
    )
  model.eval()
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  if fmt == "safetensors":
    model.save_pretrained(directory)
  elif fmt == "bin":
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
  else:
    raise ValueError(fmt)
  _tokenizer(family, kw["vocab_size"]).save(str(directory / "tokenizer.json"))
  return model


def edit_config(directory: Path, **changes):
  path = Path(directory) / "config.json"
  cfg = json.loads(path.read_text())
  cfg.update(changes)
  path.write_text(json.dumps(cfg))
