import jax
import numpy as np
import pytest

from optical_jax.retrieval.host_arrays import ALIGN, aligned_empty, device_copy, hand_over


@pytest.mark.parametrize(
  "shape, dtype", [((7, 3, 5), np.float16), ((1, 384), np.float32), ((3, 4), bool)]
)
def test_aligned_empty_is_aligned_and_contiguous(shape, dtype):
  a = aligned_empty(shape, dtype)
  assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
  assert a.ctypes.data % ALIGN == 0


def test_device_copy_casts_pads_and_never_aliases_the_caller():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 6)).astype(np.float16)
  view = x[1:4]  # a view whose data need not be aligned
  got = device_copy(view, np.float32, rows=7)
  assert got.dtype == np.float32 and got.shape == (7, 6)
  np.testing.assert_array_equal(np.asarray(got[:3]), view.astype(np.float32))
  np.testing.assert_array_equal(np.asarray(got[3:]), 0)
  want = np.asarray(got).copy()
  x[:] = 9  # the caller's memory changes afterwards: the device array does not
  np.testing.assert_array_equal(np.asarray(got), want)
  with pytest.raises(ValueError, match="do not fit"):
    device_copy(x, rows=2)


def test_a_handed_over_buffer_is_aliased_on_the_cpu():
  """The point of the module: on a CPU backend the device array reads the host buffer itself
  (no copy by the runtime; docs/PERFORMANCE.md has what the copy cost)."""
  if jax.default_backend() != "cpu":
    pytest.skip("aliasing is a CPU-backend property")
  buf = aligned_empty((64, 384), np.float32)
  buf[:] = np.arange(384, dtype=np.float32)
  got = hand_over(buf)
  assert got.unsafe_buffer_pointer() == buf.ctypes.data
  np.testing.assert_array_equal(np.asarray(got)[3], np.arange(384))
  x = np.ones((64, 384), np.float32)
  assert device_copy(x).unsafe_buffer_pointer() != x.ctypes.data
