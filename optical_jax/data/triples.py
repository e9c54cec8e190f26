"""English (query, positive, negative) triples for fine-tuning a teacher.

Files:

* TSV: ``query<TAB>positive<TAB>negative`` per line (further columns: more negatives);
* JSONL: ``{"query": str, "positive": str, "negative": str | [str, ...]}`` per line.

Malformed lines raise ``ValueError`` naming the file and line. Batches are
deterministic in the step number and have fixed shapes (one compiled program):
queries ``[B, Lq]``, documents ``[2B, Ld]`` = the B positives, then one
negative per query (the first listed), so every query sees B positives and B
negatives of which one is its own positive (in-batch plus hard negatives).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from optical_jax.tokenization import Tokenizer, bucket_length


@dataclasses.dataclass(frozen=True)
class Triple:
  query: str
  positive: str
  negatives: tuple


def read_triples(path) -> List[Triple]:
  """Reads a ``.tsv`` or ``.jsonl`` triples file (see module doc)."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  out = []
  with open(path, "rb") as fh:
    for n, raw in enumerate(fh, 1):
      try:
        line = raw.decode("utf-8").rstrip("\r\n")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid UTF-8 ({e.reason})") from e
      if not line.strip():
        continue
      if path.suffix == ".jsonl":
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); expected "
                           '{"query": ..., "positive": ..., "negative": ...}') from e
        neg = obj.get("negative")
        neg = [neg] if isinstance(neg, str) else list(neg or [])
        fields = [obj.get("query"), obj.get("positive"), *neg]
      else:
        fields = line.split("\t")
      if len(fields) < 3 or not all(isinstance(f, str) and f.strip() for f in fields):
        raise ValueError(f"{path}:{n}: expected a query, a positive and at least one negative, "
                         "all non-empty")
      out.append(Triple(fields[0].strip(), fields[1].strip(), tuple(f.strip() for f in fields[2:])))
  if not out:
    raise ValueError(f"{path}: no triples")
  return out


class TripleBatcher:
  """Fixed-shape, step-deterministic batches of tokenised triples."""

  def __init__(self, triples: Sequence[Triple], tokenizer: Tokenizer, batch_size: int,
               max_query_length: int = 32, max_doc_length: int = 128, seed: int = 0,
               query_prefix: str = "", doc_prefix: str = ""):
    if len(triples) < batch_size:
      raise ValueError(f"{len(triples)} triples are fewer than one batch of {batch_size}")
    self.triples, self.tok, self.batch_size, self.seed = list(triples), tokenizer, batch_size, seed
    self.qp, self.dp = query_prefix, doc_prefix
    q_long = max(len(tokenizer.ids(query_prefix + t.query)) for t in self.triples)
    d_long = max(len(tokenizer.ids(doc_prefix + x)) for t in self.triples
                 for x in (t.positive, t.negatives[0]))
    self.q_len = bucket_length(q_long, min(max_query_length, tokenizer.max_length))
    self.d_len = bucket_length(d_long, min(max_doc_length, tokenizer.max_length))
    self.steps_per_epoch = len(self.triples) // batch_size  # the remainder joins the next epoch's shuffle

  def batch(self, step: int) -> Dict[str, np.ndarray]:
    """``query_ids/mask [B, Lq]``, ``doc_ids/mask [2B, Ld]`` (positives, then negatives)."""
    epoch, k = divmod(step, self.steps_per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.triples))
    chosen = [self.triples[i] for i in order[k * self.batch_size:(k + 1) * self.batch_size]]
    q = self.tok([t.query for t in chosen], max_length=self.q_len, prefix=self.qp, pad_to=self.q_len)
    d = self.tok([t.positive for t in chosen] + [t.negatives[0] for t in chosen],
                 max_length=self.d_len, prefix=self.dp, pad_to=self.d_len)
    return {"query_ids": q.input_ids, "query_mask": q.attention_mask,
            "doc_ids": d.input_ids, "doc_mask": d.attention_mask}
