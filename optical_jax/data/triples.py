"""English (query, positive, negative) triples for fine-tuning a teacher.

Files:

* TSV: ``query<TAB>positive<TAB>negative`` per line (further columns: more negatives);
* JSONL: ``{"query": str, "positive": str, "negative": str | [str, ...]}`` per line.

Malformed lines raise ``ValueError`` naming the file and line. Batches are
deterministic in the step number and have fixed shapes (one compiled program):
queries ``[B, Lq]``, documents ``[2B, Ld]`` = the B positives, then one
negative per query (the first listed), so every query sees B positives and B
negatives of which one is its own positive (in-batch plus hard negatives).
With a token plan (:meth:`TripleBatcher.plan_unpadded`) batches also carry
``query_token_index`` / ``doc_token_index`` for unpadded dense layers
(``optical_jax/models/unpad.py``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Sequence, Tuple

import numpy as np

from optical_jax.data import token_plan
from optical_jax.io import existing_file, iter_lines
from optical_jax.tokenization import Tokenizer, bucket_length


@dataclasses.dataclass(frozen=True)
class Triple:
  query: str
  positive: str
  negatives: tuple


def read_triples(path) -> List[Triple]:
  """Reads a ``.tsv`` or ``.jsonl`` triples file (see module doc)."""
  path = existing_file(path)
  out = []
  for n, line in iter_lines(path):
    if not line.strip():
      continue
    if path.suffix == ".jsonl":
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(
          f"{path}:{n}: not valid JSON ({e.msg}); expected "
          '{"query": ..., "positive": ..., "negative": ...}'
        ) from e
      if not isinstance(obj, dict):
        raise ValueError(
          f"{path}:{n}: a JSON {type(obj).__name__}, not an object; expected "
          '{"query": ..., "positive": ..., "negative": ...}'
        )
      neg = obj.get("negative")
      neg = [neg] if isinstance(neg, str) else list(neg or [])
      fields = [obj.get("query"), obj.get("positive"), *neg]
    else:
      fields = line.split("\t")
    if len(fields) < 3 or not all(isinstance(f, str) and f.strip() for f in fields):
      raise ValueError(
        f"{path}:{n}: expected a query, a positive and at least one negative, all non-empty"
      )
    out.append(Triple(fields[0].strip(), fields[1].strip(), tuple(f.strip() for f in fields[2:])))
  if not out:
    raise ValueError(f"{path}: no triples")
  return out


class TripleBatcher(token_plan.PlannedBatches):
  """Fixed-shape, step-deterministic batches of tokenised triples."""

  def __init__(
    self,
    triples: Sequence[Triple],
    tokenizer: Tokenizer,
    batch_size: int,
    max_query_length: int = 32,
    max_doc_length: int = 128,
    seed: int = 0,
    query_prefix: str = "",
    doc_prefix: str = "",
  ):
    if len(triples) < batch_size:
      raise ValueError(f"{len(triples)} triples are fewer than one batch of {batch_size}")
    self.triples, self.tok, self.batch_size, self.seed = list(triples), tokenizer, batch_size, seed
    self.qp, self.dp = query_prefix, doc_prefix
    count = lambda texts, prefix: np.asarray(
      [len(e.ids) for e in tokenizer.backend.encode_batch([prefix + x for x in texts])], np.int64
    )
    q_tokens = count([t.query for t in self.triples], query_prefix)
    pos_tokens = count([t.positive for t in self.triples], doc_prefix)
    neg_tokens = count([t.negatives[0] for t in self.triples], doc_prefix)
    self.q_len = bucket_length(int(q_tokens.max()), min(max_query_length, tokenizer.max_length))
    self.d_len = bucket_length(
      int(max(pos_tokens.max(), neg_tokens.max())), min(max_doc_length, tokenizer.max_length)
    )
    # Token counts after truncation (the rows batch() builds), for plan_unpadded.
    self._q_tokens = np.minimum(q_tokens, self.q_len)
    self._pos_tokens, self._neg_tokens = (
      np.minimum(x, self.d_len) for x in (pos_tokens, neg_tokens)
    )
    self.steps_per_epoch = (
      len(self.triples) // batch_size
    )  # the remainder joins the next epoch's shuffle

  def _chosen(self, step: int) -> np.ndarray:
    epoch, k = divmod(step, self.steps_per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.triples))
    return order[k * self.batch_size : (k + 1) * self.batch_size]

  def row_lengths(self, step: int) -> Tuple[int, Dict[str, np.ndarray]]:
    """``(0, {"query": [B], "doc": [2B]})``: real tokens per row of batch ``step``."""
    idx = self._chosen(step)
    return 0, {
      "query": self._q_tokens[idx],
      "doc": np.concatenate([self._pos_tokens[idx], self._neg_tokens[idx]]),
    }

  def padded_shape(self, key: int, side: str) -> Tuple[int, int]:
    del key
    return (self.batch_size, self.q_len) if side == "query" else (2 * self.batch_size, self.d_len)

  def batch(self, step: int) -> Dict[str, np.ndarray]:
    """``query_ids/mask [B, Lq]``, ``doc_ids/mask [2B, Ld]`` (positives, then negatives);
    after :meth:`plan_unpadded` also ``query_token_index`` / ``doc_token_index [S, N]``."""
    chosen = [self.triples[i] for i in self._chosen(step)]
    q = self.tok(
      [t.query for t in chosen], max_length=self.q_len, prefix=self.qp, pad_to=self.q_len
    )
    d = self.tok(
      [t.positive for t in chosen] + [t.negatives[0] for t in chosen],
      max_length=self.d_len,
      prefix=self.dp,
      pad_to=self.d_len,
    )
    out = {
      "query_ids": q.input_ids,
      "query_mask": q.attention_mask,
      "doc_ids": d.input_ids,
      "doc_mask": d.attention_mask,
    }
    return self.with_token_index(out, 0)
