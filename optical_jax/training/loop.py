"""The training loop shared by every objective: :func:`fit` (steps, checkpoints, metric fetches,
preemption) and the batch plumbing it needs.

Restore order on start: if ``<workdir>/checkpoints`` holds a readable checkpoint the run
resumes from it (data position included: batch ``k`` is a pure function of the seed and
``k``); otherwise it starts from the given parameters.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.errors import Preempted
from optical_jax.training import preemption, sharding
from optical_jax.training.checkpoints import Checkpointer, abstract_like
from optical_jax.training.jitted_step import sharded_step
from optical_jax.training.metric_log import MetricWriter, Progress, check_finite
from optical_jax.training.state import TrainState, make_optimizer

log = logging.getLogger(__name__)

#: Fault injection for the resume tests: SIGKILL this process right after step N
#: has been dispatched and its checkpoint (if any) requested.
KILL_ENV = "OPTICAL_JAX_KILL_AT_STEP"


def _to_global(batch: Dict[str, np.ndarray], shard) -> Dict[str, jax.Array]:
  """Host batch -> global arrays. Every process builds the same global batch
  (it is a pure function of the step) and contributes its own rows."""
  if jax.process_count() == 1:
    return jax.device_put(batch, shard)
  n, i = jax.process_count(), jax.process_index()
  out = {}
  for k, v in batch.items():
    rows = v.shape[0] // n
    out[k] = jax.make_array_from_process_local_data(shard, v[i * rows : (i + 1) * rows], v.shape)
  return out


def plan_unpadded(config, batcher, total: int, name: str) -> None:
  """``config.train.unpad``: the batcher's batches carry token indexes for the run's
  ``total`` steps, so the encoder's dense layers skip padding (``models/unpad.py``)."""
  t = config.train
  if not t.unpad:
    return
  shards = sharding.batch_shards(sharding.make_mesh(config.mesh.data, config.mesh.fsdp))
  plan = batcher.plan_unpadded(total, shards, t.unpad_multiple)
  log.info("%s: unpadded dense layers, per bucket and side: %s", name, plan.describe())


def fit(
  config, workdir: Path, loss_fn, init_params, frozen_params, batch_fn, total: int, name: str
) -> dict:
  """The training loop shared by every objective.

  Args:
    workdir: checkpoints go to ``workdir/checkpoints``, metrics to ``workdir/metrics.jsonl``.
    loss_fn: ``(params, frozen_params, batch, rng) -> (loss, metrics)``.
    init_params: trainable parameters at step 0 (copied; the state is donated).
    frozen_params: passed to every step unchanged (the teacher), or ``{}``.
    batch_fn: ``step -> dict of host arrays`` (a pure function of the step).
    total: number of steps.
  Returns ``{"params", "steps", "resumed_from", "final"}``.
  Raises:
    optical_jax.errors.Preempted: a SIGTERM or SIGINT arrived (``training/preemption.py``): the
      step it ended is checkpointed, on every process the same step, and the log is closed.
  """
  t = config.train
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  optimizer, schedule = make_optimizer(
    t.learning_rate, total, t.warmup_steps, t.weight_decay, t.grad_clip, t.freeze_embeddings
  )
  state = TrainState.create(jax.tree_util.tree_map(jnp.copy, init_params), optimizer, config.seed)
  step_fn = sharded_step(mesh, loss_fn, optimizer, state, frozen_params)
  state, frozen_params = step_fn.put(state, frozen_params)
  batch_shard = step_fn.batch
  ckpt = Checkpointer(
    workdir / "checkpoints",
    every=t.checkpoint_every,
    keep=t.keep_checkpoints,
    async_save=t.async_checkpointing,
  )
  restored = ckpt.restore_latest(abstract_like(state))
  if restored is not None:
    state = restored
  writer = MetricWriter(workdir, tensorboard=t.tensorboard)
  start = int(state.step)
  log.info("%s: %d steps (starting at %d), mesh %s", name, total, start, dict(mesh.shape))
  progress = Progress(total, start)
  last, pending = {}, []
  with preemption.StopOnSignal() as stop:  # SIGTERM/SIGINT: save this step, raise Preempted
    for step in range(start, total):
      batch = batch_fn(step)
      sharding.global_batch_size_ok(next(iter(batch.values())).shape[0], mesh)
      state, metrics = step_fn(state, _to_global(batch, batch_shard), frozen_params)
      pending.append((step + 1, metrics))
      logs = (step + 1) % t.log_every == 0 or step + 1 == total
      synced = logs or (step + 1) % ckpt.every == 0
      if synced:
        # Metrics stay on the device between log and checkpoint steps, so the host builds the
        # next batch while the device computes (no sync per step); fetched here, every pending
        # step is checked, so a non-finite value names its own step and is never checkpointed.
        for k, m in jax.device_get(pending):
          check_finite(k, {n: float(v) for n, v in m.items()}, str(workdir))
        last = {n: float(v) for n, v in jax.device_get(metrics).items()}
        last["learning_rate"] = float(schedule(step))
        pending = []
      if logs:
        writer.write(step + 1, last)
        log.info("%s %s", name, progress.line(step + 1, last))
      ckpt.save(step + 1, state)
      if os.environ.get(KILL_ENV) == str(step + 1):
        os.kill(os.getpid(), signal.SIGKILL)
      preemption.inject(step + 1)
      if stop.reached(step + 1, synced) and step + 1 < total:
        for k, m in jax.device_get(pending):  # never checkpoint a non-finite step
          check_finite(k, {n: float(v) for n, v in m.items()}, str(workdir))
        if ckpt.manager.latest_step() != step + 1:
          ckpt.save(step + 1, state, force=True)
        ckpt.close()  # waits for the save
        writer.close()
        log.warning("%s: preempted: step %d saved under %s", name, step + 1, ckpt.directory)
        raise Preempted(step + 1)
  if total > start and ckpt.manager.latest_step() != total:
    ckpt.save(total, state, force=True)
  ckpt.close()
  writer.close()
  if jax.process_count() > 1:  # parameters may be sharded over devices of other hosts
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    params = multihost_utils.process_allgather(state.params, tiled=True)
  else:
    params = jax.device_get(state.params)
  return {"params": params, "steps": total, "resumed_from": start, "final": last}
