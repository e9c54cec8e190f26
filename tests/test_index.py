"""Document representations for search: packed token vectors equal each text encoded alone."""

import dataclasses

import jax
import numpy as np
import pytest

from optical_jax.loading import load_encoder
from optical_jax.models.retrieval import token_embeddings
from optical_jax.retrieval.index import encode

from checkpoints import make_checkpoint

TEXTS = ["aa bb cc", "a", "dd ee ff gg hh ii jj kk " * 3, "", "cc dd", "ee ff gg " * 9, "q"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert")
  make_checkpoint(d, "bert")
  return load_encoder(str(d))


@pytest.mark.parametrize("with_head", [False, True])
def test_maxsim_tokens_equal_each_text_alone(model, with_head):
  if with_head:  # a ColBERT-style projection, as a fine-tuned teacher has
    rng = np.random.default_rng(0)
    head = {"kernel": rng.normal(size=(model.config.hidden_size, 8)).astype(np.float32)}
    model = dataclasses.replace(model, head=head)
  reps = encode(model, TEXTS, "maxsim", prefix="passage: ", max_length=24, batch_size=1,
                progress=False)
  params = model.retrieval_params()
  if params["head"] is None:
    params = {"encoder": params["encoder"]}
  ids, truncated = model.tokenizer.encode_ids(TEXTS, 24, "passage: ")
  assert truncated == 2
  assert reps.tokens.shape == (len(TEXTS), 24, 8 if with_head else model.config.hidden_size)
  for i, x in enumerate(ids):
    alone = np.asarray(token_embeddings(model.module, params, np.asarray([x], np.int32),
                                        np.ones((1, len(x)), np.int32)))[0]
    np.testing.assert_allclose(reps.tokens[i, :len(x)].astype(np.float32), alone, atol=2e-3)  # fp16
    assert reps.mask[i].sum() == len(x) and not reps.tokens[i, len(x):].any()


@pytest.mark.parametrize("kind", ["dense", "maxsim"])
def test_truncated_cache_is_rebuilt(model, tmp_path, kind, caplog):
  from optical_jax.retrieval.index import encode_cached  # pylint: disable=import-outside-toplevel
  caplog.set_level("INFO", logger="optical_jax.retrieval.index")
  texts = ["a first text", "the second one", "three"]
  first = encode_cached(model, texts, kind, tmp_path, prefix="", max_length=16, batch_size=2,
                        progress=False)
  (path,) = tmp_path.glob(f"{kind}-*.npz")
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # killed while written
  again = encode_cached(model, texts, kind, tmp_path, prefix="", max_length=16, batch_size=2,
                        progress=False)
  assert "is unreadable" in caplog.text
  for a, b in zip(dataclasses.astuple(first), dataclasses.astuple(again)):
    if a is not None and not isinstance(a, str):
      np.testing.assert_array_equal(a, b)
  caplog.clear()
  encode_cached(model, texts, kind, tmp_path, prefix="", max_length=16, batch_size=2,
                progress=False)  # the rebuilt file is whole again
  assert "cache hit" in caplog.text
