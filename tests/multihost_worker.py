"""One process of the two-process CPU run in ``test_distributed.py`` (not a test itself).

Usage: ``python tests/multihost_worker.py OUT.json`` with ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set. Each process has 2 CPU devices; the
mesh spans all of them. Runs the OPTICAL step of ``test_training._run`` for 3 steps on a
(data=-1, fsdp=2) mesh, each process contributing its rows of the batch through
``training/loop.py: _to_global``, and writes the losses.
"""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from compile_flags import xla_flags  # noqa: E402

os.environ["XLA_FLAGS"] = xla_flags(2)

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")

from optical_jax.training import distributed  # noqa: E402

distributed.initialize()


import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from optical_jax.losses.ot import SinkhornConfig  # noqa: E402
from optical_jax.models import Encoder  # noqa: E402
from optical_jax.training.loop import _to_global  # noqa: E402
from optical_jax.training import sharding  # noqa: E402
from optical_jax.training.state import TrainState, make_optimizer  # noqa: E402
from optical_jax.training.jitted_step import sharded_step  # noqa: E402
from optical_jax.losses.objectives import DistillSpec, make_loss  # noqa: E402
from train_fixtures import CFG, random_batch  # noqa: E402


def main(out: str) -> None:
  assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.devices())
  mesh = sharding.make_mesh(data=-1, fsdp=2)
  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  teacher = {"encoder": enc}
  spec = DistillSpec(objective="optical", sinkhorn=SinkhornConfig(max_iterations=100))
  opt, _ = make_optimizer(1e-3, 10, 2, 0.01, 1.0)
  state = TrainState.create(jax.tree_util.tree_map(jnp.copy, teacher), opt, seed=0)
  step = sharded_step(mesh, make_loss(module, spec), opt, state, teacher, min_size=1)
  state, teacher = step.put(state, teacher)
  batch_shard = step.batch
  losses = []
  for k in range(3):
    state, metrics = step(state, _to_global(random_batch(k), batch_shard), teacher)
    losses.append(float(metrics["loss"]))
  if jax.process_index() == 0:
    Path(out).write_text(json.dumps({"losses": losses, "mesh": dict(mesh.shape)}))


if __name__ == "__main__":
  main(sys.argv[1])
