"""Document representations for search: packed token vectors equal each text encoded alone."""

import dataclasses
import functools
import json

import jax
import numpy as np
import pytest

from optical_jax.loading import load_encoder
from optical_jax.models.scoring import token_embeddings
from optical_jax.retrieval.index import encode
from optical_jax.retrieval.store import DiskRows

from hf_fixtures import make_checkpoint

TEXTS = ["aa bb cc", "a", "dd ee ff gg hh ii jj kk " * 3, "", "cc dd", "ee ff gg " * 9, "q"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert")
  make_checkpoint(d, "bert")
  return load_encoder(str(d))


@pytest.mark.parametrize("with_head", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_maxsim_tokens_equal_each_text_alone(model, with_head):
  if with_head:  # a ColBERT-style projection, as a fine-tuned teacher has
    rng = np.random.default_rng(0)
    head = {"kernel": rng.normal(size=(model.config.hidden_size, 8)).astype(np.float32)}
    model = dataclasses.replace(model, head=head)
  reps = encode(
    model, TEXTS, "maxsim", prefix="passage: ", max_length=24, batch_size=1, progress=False
  )
  params = model.retrieval_params()
  if params["head"] is None:
    params = {"encoder": params["encoder"]}
  ids, truncated = model.tokenizer.encode_ids(TEXTS, 24, "passage: ")
  assert truncated == 2
  assert reps.tokens.shape == (len(TEXTS), 24, 8 if with_head else model.config.hidden_size)
  alone_fn = jax.jit(functools.partial(token_embeddings, model.module))  # quicker than eager
  for i, x in enumerate(ids):
    alone = np.asarray(alone_fn(params, np.asarray([x], np.int32), np.ones((1, len(x)), np.int32)))[
      0
    ]
    np.testing.assert_allclose(
      reps.tokens[i, : len(x)].astype(np.float32), alone, atol=2e-3
    )  # fp16
    assert reps.mask[i].sum() == len(x) and not reps.tokens[i, len(x) :].any()


def _same(a, b):
  """Equal representations; vectors up to packing's float noise (texts encoded in other
  batches: shards of 2 against all at once) and one float16 step for token vectors."""
  assert a.kind == b.kind
  for name in ("vectors", "tokens", "mask"):
    x, y = getattr(a, name), getattr(b, name)
    assert (x is None) == (y is None)
    if x is not None:
      x, y = np.asarray(x), np.asarray(y)
      assert x.shape == y.shape and x.dtype == y.dtype
      if x.dtype == bool:
        np.testing.assert_array_equal(x, y)
      else:
        np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), atol=1e-3)


STORE_TEXTS = [
  "a first text",
  "the second one",
  "three",
  "dd ee ff gg hh ii jj kk",
  "q",
  "cc dd ee",
  "ff",
]


@pytest.mark.parametrize("kind", ["dense", "maxsim"])
def test_store_equals_encoding_and_resumes_after_a_kill(model, tmp_path, kind, monkeypatch):
  """Shards of 2 texts: the store holds what encode() gives for all texts at once; a run killed
  in its third shard resumes there (the first two shards are not encoded again)."""
  from optical_jax.retrieval import index  # pylint: disable=import-outside-toplevel

  kw = dict(prefix="", max_length=16, batch_size=2, progress=False)
  whole = index.encode(model, STORE_TEXTS, kind, **kw)
  calls, real = [], index.encode

  def killed(m, texts, k, **kwargs):
    calls.append(len(texts))
    if len(calls) == 3:
      raise KeyboardInterrupt  # a kill in the middle of the third shard
    return real(m, texts, k, **kwargs)

  monkeypatch.setattr(index, "encode", killed)
  with pytest.raises(KeyboardInterrupt):
    index.encode_cached(model, STORE_TEXTS, kind, tmp_path, shard_size=2, **kw)
  (folder,) = tmp_path.glob(f"{kind}-*")
  manifest = json.loads((folder / "manifest.json").read_text())
  assert manifest["shards_done"] == 2 and not manifest["complete"]
  calls.clear()
  monkeypatch.setattr(index, "encode", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
  got = index.encode_cached(model, STORE_TEXTS, kind, tmp_path, shard_size=2, **kw)
  assert calls == [2, 1]  # shards 3 and 4 only
  _same(got, whole)
  if kind == "maxsim":  # read from disk, not held in memory
    assert isinstance(got.tokens, DiskRows) and isinstance(got.mask, DiskRows)
    np.testing.assert_array_equal(got.tokens[np.array([5, 1, 1])], whole.tokens[[5, 1, 1]])
  calls.clear()
  _same(index.encode_cached(model, STORE_TEXTS, kind, tmp_path, shard_size=2, **kw), whole)
  assert calls == []  # a hit


@pytest.mark.parametrize("kind", ["dense", "maxsim"])
def test_truncated_store_is_rebuilt(model, tmp_path, kind, caplog):
  from optical_jax.retrieval.index import encode_cached  # pylint: disable=import-outside-toplevel

  caplog.set_level("INFO", logger="optical_jax.retrieval")
  texts = ["a first text", "the second one", "three"]
  kw = dict(prefix="", max_length=16, batch_size=2, progress=False)
  first = encode_cached(model, texts, kind, tmp_path, **kw)
  (path,) = tmp_path.glob(f"{kind}-*/{'vectors' if kind == 'dense' else 'tokens'}.npy")
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # killed while copied
  again = encode_cached(model, texts, kind, tmp_path, **kw)
  assert "is truncated" in caplog.text
  _same(first, again)


@pytest.mark.parametrize("kind", ["dense", "maxsim"])
def test_cache_of_the_earlier_npz_format(model, tmp_path, kind, caplog):
  """A cache written as one .npz (before the store) is still read; a truncated one is rebuilt
  instead of raising BadZipFile."""
  from optical_jax.retrieval import index  # pylint: disable=import-outside-toplevel

  caplog.set_level("INFO", logger="optical_jax.retrieval.index")
  texts = ["a first text", "the second one", "three"]
  kw = dict(prefix="", max_length=16, batch_size=2, progress=False)
  reps = index.encode(model, texts, kind, **kw)
  path = tmp_path / f"{kind}-{index._cache_key(model, texts, kind, kw)}.npz"  # pylint: disable=protected-access
  fields = (
    {"vectors": reps.vectors} if kind == "dense" else {"tokens": reps.tokens, "mask": reps.mask}
  )
  np.savez(path, **fields)
  _same(index.encode_cached(model, texts, kind, tmp_path, **kw), reps)
  assert "cache hit" in caplog.text and not list(tmp_path.glob(f"{kind}-*/"))
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  _same(index.encode_cached(model, texts, kind, tmp_path, **kw), reps)
  assert "is unreadable" in caplog.text


def test_disk_rows_read_like_an_array(tmp_path):
  from optical_jax.retrieval.store import DiskRows  # pylint: disable=import-outside-toplevel

  x = np.random.default_rng(0).normal(size=(9, 3, 2)).astype(np.float16)
  np.save(tmp_path / "x.npy", x)
  rows = DiskRows(tmp_path / "x.npy")
  assert rows.shape == x.shape and rows.dtype == x.dtype and len(rows) == 9
  for index in (
    np.array([4, 2, 2, 8]),
    slice(2, 7),
    slice(None, None, 3),
    np.array([-1]),
    np.arange(9) % 2 == 0,
    np.array([8, 0, 1, 0]),
    np.array([0, 8]),
  ):  # scattered too
    np.testing.assert_array_equal(rows[index], x[index])
  np.testing.assert_array_equal(np.asarray(rows), x)
  with pytest.raises(IndexError):
    rows[np.array([9])]
