"""Sequence packing: every text placed once, intact, in rows that never overflow."""

import numpy as np
import pytest

from optical_jax.packing import MAX_SEGMENTS, pack_batches, plan_rows, round_rows, row_length_for


def _check(ids, max_length, tokens_per_batch, max_segments=MAX_SEGMENTS):
  seen = []
  shapes = {}
  for b in pack_batches(ids, -1, max_length, tokens_per_batch, max_segments=max_segments):
    rows, width = b.input_ids.shape
    assert shapes.setdefault(width, rows) == rows  # one shape per row length
    assert rows == 1 or rows * width <= tokens_per_batch
    for i, r, s, start, n in zip(b.text_index, b.row, b.segment, b.start, b.length):
      np.testing.assert_array_equal(b.input_ids[r, start : start + n], ids[i])
      assert np.all(b.segment_ids[r, start : start + n] == s)
      assert np.all(b.attention_mask[r, start : start + n] == 1)
    assert np.all((b.segment_ids > 0) == (b.attention_mask == 1))
    assert np.all(b.input_ids[b.attention_mask == 0] == -1)
    assert b.segment_ids.max(initial=0) <= max_segments
    seen += b.text_index.tolist()
  assert sorted(seen) == list(range(len(ids)))
  return shapes


def test_every_text_once_and_intact():
  rng = np.random.default_rng(0)
  ids = [list(rng.integers(0, 100, size=n)) for n in rng.integers(1, 300, size=500)]
  shapes = _check(ids, max_length=300, tokens_per_batch=4096)
  assert set(shapes) <= {64, 128, 256, 300}


def test_short_texts_and_the_segment_cap():
  ids = [[7, 8]] * 100 + [[]]
  _check(ids, max_length=64, tokens_per_batch=640, max_segments=5)
  rows = plan_rows([2] * 10, 64, max_segments=4)
  assert [len(m) for _, m in rows] == [4, 4, 2]


def test_row_lengths_and_rounding():
  assert [row_length_for(n, 512) for n in (1, 64, 65, 129, 300, 512)] == [
    64,
    64,
    128,
    256,
    512,
    512,
  ]
  assert row_length_for(40, 64) == 64 and row_length_for(600, 512) == 600
  for n in range(1, 300):
    r = round_rows(n)
    assert n <= r < 1.25 * n + 1
  assert len({round_rows(n) for n in range(65, 129)}) == 4
  with pytest.raises(ValueError, match="more than max_length"):
    list(pack_batches([[1] * 10], 0, 8, 64))


def test_real_sentences_leave_little_padding(shared_data):
  """TICO-19's English side: packed rows are over 90% real tokens, against under 75% for
  batches of 64 length-sorted texts padded to a power-of-two length (the padded path)."""
  from optical_jax.tokenization import bucket_length
  from optical_jax.data.bitext import read_tmx

  path = shared_data / "tico19" / "original_zips" / "all.en-sw.tmx.zip"
  if not path.is_file():
    pytest.skip(f"{path} not present")
  pairs = read_tmx(path, "sw")
  rng = np.random.default_rng(0)
  lengths = [min(len(p.english.split()) * 4 // 3 + 2, 512) for p in pairs]  # ~ subword counts
  ids = [[1] * n for n in rng.permutation(lengths)[:1000]]
  real = slots = 0
  for b in pack_batches(ids, 0, 512, 64 * 128):
    real += b.real_tokens
    slots += b.input_ids.size
  order = sorted(lengths[:1000], reverse=True)
  padded = sum(64 * bucket_length(max(order[s : s + 64]), 512) for s in range(0, 1000, 64))
  assert real / slots > 0.9
  assert real / padded < 0.75
