"""Device mesh and shardings from the config.

The mesh has two axes, ``data`` (the batch is split over it) and ``fsdp``
(parameters may be split over it, FSDP-style). Axis types are ``Auto``: with
``Explicit`` axis types ott-jax's Sinkhorn fails to trace. The train step is
written on global arrays and XLA inserts the collectives.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

AXES = ("data", "fsdp")


def make_mesh(data: int = -1, fsdp: int = 1) -> jax.sharding.Mesh:
  """A ``(data, fsdp)`` mesh over all devices; ``data=-1`` takes what is left.

  Raises:
    ValueError: if the sizes do not multiply to the device count.
  """
  n = jax.device_count()
  if fsdp < 1 or n % fsdp:
    raise ValueError(f"mesh.fsdp={fsdp} does not divide the {n} devices")
  if data == -1:
    data = n // fsdp
  if data * fsdp != n:
    raise ValueError(f"mesh data={data} x fsdp={fsdp} != {n} devices")
  return jax.make_mesh((data, fsdp), AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data`` (and ``fsdp``, which also holds data)."""
  return NamedSharding(mesh, P(AXES))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_sharding(mesh, shapes: Any, min_size: int = 2**16) -> Any:
  """FSDP shardings for a pytree of shapes (e.g. from ``jax.eval_shape``).

  Each array of at least ``min_size`` elements is split over ``fsdp`` along its
  largest axis divisible by the ``fsdp`` size; others are replicated. With
  ``fsdp == 1`` everything is replicated.
  """
  size = mesh.shape["fsdp"]

  def spec(x):
    shape = getattr(x, "shape", ())
    if size == 1 or math.prod(shape) < min_size:
      return NamedSharding(mesh, P())
    for axis in np.argsort(shape)[::-1]:
      if shape[axis] % size == 0:
        parts = [None] * len(shape)
        parts[axis] = "fsdp"
        return NamedSharding(mesh, P(*parts))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map(spec, shapes)


def batch_shards(mesh) -> int:
  """Blocks the batch's leading axis is split into (``data`` x ``fsdp``, one per device)."""
  return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch_size_ok(batch_size: int, mesh) -> None:
  shards = batch_shards(mesh)
  if batch_size % shards:
    raise ValueError(
      f"batch size {batch_size} is not divisible by the {shards} data shards "
      f"of the mesh {dict(mesh.shape)}"
    )
