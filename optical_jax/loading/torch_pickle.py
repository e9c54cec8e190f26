"""Reads PyTorch ``pytorch_model.bin`` state dicts into numpy, without torch.

A ``torch.save`` file (zip format, torch >= 1.6) is a zip archive holding
``<root>/data.pkl`` (a pickle whose tensors are persistent references) and
``<root>/data/<key>`` (raw little-endian storage bytes). We unpickle with an
allow-list of globals, so no arbitrary code runs, and rebuild each tensor as a
strided numpy view of its storage. Legacy (pre-1.6, non-zip) files fall back
to ``torch.load(weights_only=True)`` when torch is installed.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Dict

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class _StorageType:
  def __init__(self, name: str):
    self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *args):
  del args
  if not size:
    return storage[offset : offset + 1].reshape(()).copy()
  item = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(
    storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
  ).copy()


def _rebuild_parameter(data, requires_grad, backward_hooks, *args):
  del requires_grad, backward_hooks, args
  return data


class _Unpickler(pickle.Unpickler):
  def __init__(self, fh, archive: zipfile.ZipFile, root: str, path: Path):
    super().__init__(fh)
    self._archive, self._root, self._path = archive, root, path
    self._cache: Dict[str, np.ndarray] = {}

  def find_class(self, module, name):
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if module == "torch" and name == "Size":
      return tuple
    raise pickle.UnpicklingError(
      f"{self._path}: refusing to unpickle {module}.{name} (not a plain tensor state dict)"
    )

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"{self._path}: unexpected persistent id {pid!r}")
    _, storage_type, key, _location, _numel = pid
    if key not in self._cache:
      raw = self._archive.read(f"{self._root}/data/{key}")
      self._cache[key] = np.frombuffer(raw, dtype=storage_type.dtype)
    return self._cache[key]


def load_torch_state_dict(path) -> Dict[str, np.ndarray]:
  """Reads a ``torch.save``-d state dict. Returns name -> numpy array.

  Raises:
    ValueError: naming the file, when it is not a tensor state dict.
  """
  path = Path(path)
  if not zipfile.is_zipfile(path):
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError(
        f"{path}: legacy (non-zip) torch checkpoint; install torch to read it, "
        "or convert it to model.safetensors"
      ) from e
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in sd.items()}
  with zipfile.ZipFile(path) as archive:
    pkls = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pkls) != 1:
      raise ValueError(f"{path}: expected one */data.pkl in the archive, found {len(pkls)}")
    root = pkls[0][: -len("/data.pkl")]
    with archive.open(pkls[0]) as fh:
      obj = _Unpickler(fh, archive, root, path).load()
  if not isinstance(obj, dict):
    raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
  for k, v in obj.items():
    if not isinstance(v, np.ndarray):
      raise ValueError(f"{path}: key {k!r} is a {type(v).__name__}, not a tensor")
  return dict(obj)
