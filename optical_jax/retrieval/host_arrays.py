"""Host arrays handed to XLA's CPU backend without a second copy.

On a CPU backend ``jax.device_put`` of a C-contiguous numpy array whose data starts on a 64-byte
boundary aliases it; any other array is copied by the runtime, at 1.3-2.4 GB/s on the 2-core AMD
machine against numpy's ~12 GB/s (``docs/PERFORMANCE.md``). Exact search hands the device one
block of documents after another, so :func:`device_copy` copies each block once, with numpy,
into a fresh aligned buffer that the device array then owns; :func:`hand_over` takes a buffer
the caller filled itself (a gather straight into it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ALIGN = 64


def aligned_empty(shape, dtype) -> np.ndarray:
  """An uninitialised C-contiguous array whose data starts on an :data:`ALIGN`-byte boundary."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(nbytes + ALIGN, np.uint8)
  start = -raw.ctypes.data % ALIGN
  return raw[start : start + nbytes].view(dtype).reshape(shape)


def device_copy(x, dtype=None, rows: int | None = None) -> jax.Array:
  """``x`` (an array, a view or a memmap) as a jax array of ``dtype`` (None = x's), zero-padded
  along axis 0 to ``rows`` (None = as it is): on a CPU backend one numpy copy (the cast
  included) into a fresh aligned buffer that the jax array aliases, elsewhere ``jnp.asarray``.
  The caller's memory is never aliased, so it may change afterwards."""
  x = np.asarray(x)
  dtype = np.dtype(dtype or x.dtype)
  rows = len(x) if rows is None else rows
  if rows < len(x):
    raise ValueError(f"{len(x)} rows do not fit {rows}")
  if jax.default_backend() != "cpu":
    pad = [(0, rows - len(x))] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(jnp.asarray(x, dtype), pad)
  buf = aligned_empty((rows,) + x.shape[1:], dtype)
  np.copyto(buf[: len(x)], x, casting="unsafe")
  buf[len(x) :] = 0
  return jax.device_put(buf)


def hand_over(buf: np.ndarray) -> jax.Array:
  """A buffer from :func:`aligned_empty` that the caller fills and never touches again, as a jax
  array: aliased on a CPU backend, copied elsewhere."""
  return jax.device_put(buf) if jax.default_backend() == "cpu" else jnp.asarray(buf)
