"""The student (``training/student.py``): weight interpolation and the English bank's rows."""

import numpy as np
import pytest


def test_weight_interpolation():
  """config.train.interpolation (WiSE-FT): 0 is the teacher, 1 the student, linear between."""
  from optical_jax.training.student import interpolate

  teacher = {"a": np.zeros((2, 3), np.float32), "b": {"c": np.full(4, 2.0, np.float32)}}
  student = {"a": np.ones((2, 3), np.float32), "b": {"c": np.full(4, 4.0, np.float32)}}
  assert interpolate(teacher, student, 1.0) is student
  zero = interpolate(teacher, student, 0.0)
  np.testing.assert_array_equal(zero["b"]["c"], teacher["b"]["c"])
  mid = interpolate(teacher, student, 0.25)
  np.testing.assert_allclose(mid["a"], 0.25)
  np.testing.assert_allclose(mid["b"]["c"], 2.5)
  assert mid["a"].dtype == np.float32
  with pytest.raises(ValueError, match="interpolation=1.5"):
    interpolate(teacher, student, 1.5)


def test_distinct_english_shares_rows():
  from optical_jax.training.student import distinct_english  # pylint: disable=import-outside-toplevel

  texts, index = distinct_english([("a", "x"), ("b", "y"), ("a", "z"), ("c", "w")])
  assert texts == ["a", "b", "c"] and index.tolist() == [0, 1, 0, 2]


def test_english_token_bank_is_what_maxsim_retrieval_reads():
  """english_bank_tokens: the teacher's unit token vectors of each text at the training token
  limit and prefix, the same vectors the MaxSim ranker encodes (its store is float16), padding
  masked; the student records the ranker its contrastive term trained for."""
  import ml_collections  # pylint: disable=import-outside-toplevel

  from optical_jax.loading import load_encoder  # pylint: disable=import-outside-toplevel
  from optical_jax.retrieval.index import encode  # pylint: disable=import-outside-toplevel
  from optical_jax.training.student import english_bank_tokens, trained_ranker  # pylint: disable=import-outside-toplevel

  teacher = load_encoder("random:tiny")
  texts = ["where is the river", "who wrote it?", "a"] * 30  # more than one batch of 64
  config = ml_collections.ConfigDict({"data": {"max_length": 6}})
  tokens, mask = english_bank_tokens(teacher, texts, config, "query: ")
  ref = encode(teacher, texts, "maxsim", prefix="query: ", max_length=6, progress=False)
  assert tokens.dtype == np.float32 and tokens.shape[:2] == mask.shape == ref.mask.shape
  np.testing.assert_array_equal(mask, ref.mask)
  np.testing.assert_allclose(tokens, np.asarray(ref.tokens, np.float32), atol=2e-3)
  np.testing.assert_allclose(np.linalg.norm(tokens[mask], axis=-1), 1.0, rtol=1e-5)
  assert not np.any(tokens[~mask])
  d = lambda **kw: ml_collections.ConfigDict({"distill": kw})
  assert trained_ranker(d(contrastive_weight=2.0, contrastive_ranker="maxsim")) == "maxsim"
  assert trained_ranker(d(contrastive_weight=0.0, contrastive_ranker="maxsim")) == "dense"
  assert trained_ranker(d(contrastive_weight=2.0, contrastive_ranker="dense")) == "dense"


def test_bank_neighbors_are_the_nearest_other_rows():
  """bank_neighbors: each row's k most similar other rows, most similar first, blockwise."""
  from optical_jax.training.student import bank_neighbors  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  bank = rng.normal(size=(9, 4)).astype(np.float32)
  bank /= np.linalg.norm(bank, axis=1, keepdims=True)
  sim = bank @ bank.T
  np.fill_diagonal(sim, -np.inf)
  np.testing.assert_array_equal(bank_neighbors(bank, 3, block=4), np.argsort(-sim, axis=1)[:, :3])
  assert bank_neighbors(bank[:2], 5).tolist() == [[1], [0]]  # at most N - 1
