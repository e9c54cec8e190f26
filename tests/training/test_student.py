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
