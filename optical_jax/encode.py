"""Sentence and token embeddings of texts (the library calls behind ``python -m
optical_jax.commands.embed``, eval.py and the training checks).

By default texts are *packed* (``optical_jax/packing.py``): several texts share
a row of 64, 128, 256 or 512 tokens, kept apart by block-diagonal attention, so
almost no compute goes to padding and the jitted encoder compiles once per row
length. ``pack=False`` (``--nopack``) pads instead: texts sorted by length,
each batch padded to a power-of-two length and to ``batch_size`` rows. Both give
the same vectors (tested to 1e-5).
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from optical_jax.errors import UsageError
from optical_jax.loading.load import LoadedEncoder
from optical_jax.models.pooling import l2_normalize, pool, pool_segments
from optical_jax.models.scoring import token_embeddings
from optical_jax.packing import MAX_SEGMENTS, TOKENS_PER_TEXT, pack_batches


@functools.lru_cache(maxsize=16)
def make_embed_fn(module, pooling: str, normalize: bool) -> Callable:
  """Jitted ``(params, input_ids [B,T], mask [B,T]) -> [B, d] float32``."""

  @jax.jit
  def embed(params, input_ids, mask):
    hidden = module.apply(params, input_ids, mask).last_hidden_state
    vec = pool(hidden, mask, pooling)
    return l2_normalize(vec) if normalize else vec

  return embed


@functools.lru_cache(maxsize=16)
def make_packed_embed_fn(module, pooling: str, normalize: bool, num_segments: int) -> Callable:
  """Jitted ``(params, input_ids, mask, segment_ids [R, L]) -> [R, num_segments, d] float32``."""

  @jax.jit
  def embed(params, input_ids, mask, segment_ids):
    hidden = module.apply(params, input_ids, mask, segment_ids=segment_ids).last_hidden_state
    vec = pool_segments(hidden, segment_ids, num_segments, pooling)
    return l2_normalize(vec) if normalize else vec

  return embed


def encode_texts(
  model: LoadedEncoder,
  texts: Sequence[str],
  *,
  pooling: Optional[str] = None,
  max_length: Optional[int] = None,
  prefix: str = "",
  batch_size: int = 64,
  normalize: bool = False,
  progress: bool = True,
  pack: bool = True,
  tokens_per_batch: Optional[int] = None,
  side: Optional[str] = None,
) -> np.ndarray:
  """Embeds ``texts`` with ``model``. Returns float32 ``[len(texts), d]`` in input order.

  Args:
    pooling: ``"mean"`` or ``"cls"``; default the model's own.
    max_length: token limit (specials included); default the model's.
    prefix: prepended to every text (e.g. ``"query: "`` for E5 models).
    batch_size: texts per forward pass when not packing (the last batch is
      padded to it); when packing, sets the default ``tokens_per_batch``.
    normalize: L2-normalise each row.
    progress: show a progress bar on stderr.
    pack: pack several texts per row (module docstring); False pads instead.
    tokens_per_batch: token positions per forward pass when packing; default
      ``batch_size * packing.TOKENS_PER_TEXT`` (chosen by measurement on CPU,
      ``docs/PERFORMANCE.md``; raise it on accelerators).
    side: ``"query"`` or ``"passage"``: the model's recorded prefix of that side
      (:func:`side_prefix`); not together with ``prefix``.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if side is not None:
    if prefix:
      raise UsageError(f"side {side!r} applies the model's own prefix; give no prefix with it")
    prefix = side_prefix(model, side)
  pooling = pooling or model.pooling
  if pack:
    return _encode_packed(
      model,
      texts,
      pooling,
      max_length,
      prefix,
      tokens_per_batch or batch_size * TOKENS_PER_TEXT,
      normalize,
      progress,
    )
  return _encode_padded(model, texts, pooling, max_length, prefix, batch_size, normalize, progress)


SIDES = ("query", "passage")


def side_prefix(model: LoadedEncoder, side: str) -> str:
  """The prefix ``model`` records for ``side`` (``"query"``: ``query_prefix``, ``"passage"``:
  ``doc_prefix``; ``""`` where it records none)."""
  if side not in SIDES:
    raise UsageError(f"side {side!r}: expected one of {SIDES}")
  return model.query_prefix if side == "query" else model.doc_prefix


def _report_truncated(truncated: int, total: int) -> None:
  if truncated:
    print(
      f"encode: {truncated} of {total} texts were truncated to the token limit", file=sys.stderr
    )


def run_packed(
  fn: Callable,
  ids: Sequence[Sequence[int]],
  pad_id: int,
  max_length: int,
  tokens_per_batch: int,
  progress: bool,
  desc: str = "encode",
):
  """Runs ``fn(input_ids, mask, segment_ids)`` on every packed batch of ``ids``
  (:func:`optical_jax.packing.pack_batches`) with a progress bar on stderr.
  Yields ``(PackedBatch, fn's output as a NumPy array)``."""
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  bar = tqdm(total=len(ids), desc=desc, unit="text", disable=not progress, file=sys.stderr)
  for b in pack_batches(ids, pad_id, max_length, tokens_per_batch):
    yield b, np.asarray(fn(b.input_ids, b.attention_mask, b.segment_ids))
    bar.update(len(b.text_index))
  bar.close()


def _encode_packed(
  model: LoadedEncoder,
  texts: Sequence[str],
  pooling: str,
  max_length: Optional[int],
  prefix: str,
  tokens_per_batch: int,
  normalize: bool,
  progress: bool,
) -> np.ndarray:
  limit = min(max_length or model.tokenizer.max_length, model.tokenizer.max_length)
  ids, truncated = model.tokenizer.encode_ids(texts, limit, prefix)
  embed = functools.partial(
    make_packed_embed_fn(model.module, pooling, bool(normalize), MAX_SEGMENTS), model.params
  )
  out = np.zeros((len(texts), model.config.output_size), np.float32)
  for b, pooled in run_packed(
    embed, ids, model.tokenizer.pad_id, limit, tokens_per_batch, progress
  ):
    out[b.text_index] = pooled[b.row, b.segment - 1]
  _report_truncated(truncated, len(texts))
  return out


def _encode_padded(
  model: LoadedEncoder,
  texts: Sequence[str],
  pooling: str,
  max_length: Optional[int],
  prefix: str,
  batch_size: int,
  normalize: bool,
  progress: bool,
) -> np.ndarray:
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  embed = make_embed_fn(model.module, pooling, bool(normalize))
  out = np.zeros((len(texts), model.config.output_size), np.float32)
  order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
  truncated = 0
  bar = tqdm(total=len(texts), desc="encode", unit="text", disable=not progress, file=sys.stderr)
  for start in range(0, len(texts), batch_size):
    idx = order[start : start + batch_size]
    batch = model.tokenizer([texts[i] for i in idx], max_length=max_length, prefix=prefix)
    truncated += batch.num_truncated
    ids, mask = batch.input_ids, batch.attention_mask
    if len(idx) < batch_size:  # fixed batch shape: pad with empty rows
      pad = batch_size - len(idx)
      ids = np.pad(ids, ((0, pad), (0, 0)), constant_values=model.tokenizer.pad_id)
      mask = np.pad(mask, ((0, pad), (0, 0)))
    out[idx] = np.asarray(embed(model.params, ids, mask))[: len(idx)]
    bar.update(len(idx))
  bar.close()
  _report_truncated(truncated, len(texts))
  return out


@functools.lru_cache(maxsize=16)
def _token_fn(module):
  """Jitted ``(params, ids, mask, segment_ids [R, L]) -> [R, L, p]``, one per encoder module, so
  the programs compile once per row shape, not once per call (a store is encoded shard by
  shard)."""
  return jax.jit(lambda p, ids, mask, seg: token_embeddings(module, p, ids, mask, segment_ids=seg))


def encode_tokens(
  model: LoadedEncoder,
  texts: Sequence[str],
  *,
  prefix: str = "",
  max_length: Optional[int] = None,
  batch_size: int = 32,
  use_head: bool = True,
  dtype=np.float16,
  progress: bool = False,
  desc: str = "encode",
) -> tuple:
  """The unit token vectors of every text (last layer, through ``model.head`` when it has one and
  ``use_head``), what MaxSim reads -> ``(tokens dtype [N, L, p], mask bool [N, L])``, ``L`` the
  longest text's tokens. Encoded packed (``optical_jax/packing.py``): several texts per row, each
  getting the states it gets alone, then cut back out."""
  max_length = min(max_length or model.tokenizer.max_length, model.tokenizer.max_length)
  params = model.retrieval_params()
  if params["head"] is None or not use_head:
    params = {"encoder": params["encoder"]}
  fn = functools.partial(_token_fn(model.module), params)
  ids, _ = model.tokenizer.encode_ids(texts, max_length, prefix)
  width = max((len(x) for x in ids), default=1)
  head = params.get("head")
  dim = int(head["kernel"].shape[1]) if head is not None else model.config.output_size
  tokens = np.zeros((len(texts), width, dim), dtype)
  mask = np.zeros((len(texts), width), bool)
  for b, out in run_packed(
    fn, ids, model.tokenizer.pad_id, max_length, batch_size * TOKENS_PER_TEXT, progress, desc
  ):
    for i, r, start, n in zip(b.text_index, b.row, b.start, b.length):
      tokens[i, :n] = out[r, start : start + n]
      mask[i, :n] = True
  return tokens, mask


def check_token_limit(flag: str, value: Optional[int]) -> None:
  """Refuses a token limit that leaves no room for the two special tokens every text keeps
  (``[CLS] ... [SEP]``, ``<s> ... </s>``): below 2 the tokenizer would silently encode texts
  of nothing but padding or one special token. ``None`` (the model's own limit) passes."""
  if value is not None and value < 2:
    raise UsageError(
      f"--{flag}={value}: a token limit must be >= 2 (the special tokens every "
      "text keeps); leave it unset for the model's own"
    )
