"""The one place a train step is jitted with shardings over a mesh.

``loop.fit``, the benchmarks (``bench/ot_step.py``, ``bench/teacher_step.py``) and the tests
all build their step here, so what they time and test is what trains:
``jax.jit(partial(train_step, loss_fn=..., optimizer=...))`` with FSDP shardings of the state
and the frozen parameters from ``jax.eval_shape`` (``sharding.param_sharding``), the batch split
over the mesh's data axes, replicated metrics, and the state donated.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import optax

from optical_jax.training import sharding
from optical_jax.training.steps import train_step


@dataclasses.dataclass(frozen=True)
class ShardedStep:
  """A jitted step and the shardings it was built for.

  Attributes:
    fn: ``(state, batch, frozen) -> (state, metrics)``; ``state`` is donated.
    state: the state's shardings; ``frozen``: the frozen parameters'; ``batch``: every batch
      array's (rows split over the data axes).
  """

  fn: Callable
  state: Any
  frozen: Any
  batch: Any

  def put(self, state, frozen):
    """``(state, frozen)`` placed on the mesh with these shardings."""
    return jax.device_put(state, self.state), jax.device_put(frozen, self.frozen)

  def __call__(self, state, batch, frozen):
    return self.fn(state, batch, frozen)


def sharded_step(
  mesh,
  loss_fn: Callable,
  optimizer: optax.GradientTransformation,
  state,
  frozen,
  min_size: int = 2**16,
) -> ShardedStep:
  """The step of ``loss_fn`` (``(params, frozen, batch, rng) -> (loss, metrics)``) for
  ``state`` (a ``TrainState``) and ``frozen`` (or their ``jax.eval_shape``); arrays of at least
  ``min_size`` elements are split over the mesh's ``fsdp`` axis."""
  state_shard = sharding.param_sharding(mesh, jax.eval_shape(lambda: state), min_size=min_size)
  frozen_shard = sharding.param_sharding(mesh, jax.eval_shape(lambda: frozen), min_size=min_size)
  batch_shard = sharding.batch_sharding(mesh)
  fn = jax.jit(
    functools.partial(train_step, loss_fn=loss_fn, optimizer=optimizer),
    in_shardings=(state_shard, batch_shard, frozen_shard),
    out_shardings=(state_shard, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  return ShardedStep(fn, state_shard, frozen_shard, batch_shard)
