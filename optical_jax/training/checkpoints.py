"""Orbax checkpoints that resume on their own.

Restore order (``restore_latest``): the newest finalised step under
``<workdir>/checkpoints``; if it cannot be read (corrupt or half-deleted), a
warning and the next older one; if none can be read, ``None`` (start fresh).
Orbax writes each step into a temporary directory and renames it when
complete, so a save killed midway leaves no step that looks finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
  """Periodic saves (every ``every`` steps, keeping ``keep``) and automatic resume."""

  def __init__(self, directory, every: int, keep: int = 3, async_save: bool = True):
    self.directory = Path(directory).absolute()
    self.every = max(int(every), 1)
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        save_interval_steps=self.every,
        enable_async_checkpointing=async_save,
        create=True,
        cleanup_tmp_directories=True,
      ),
    )

  def save(self, step: int, state: Any, force: bool = False) -> bool:
    """Saves at multiples of ``every`` (or when forced). Returns whether a save started."""
    if not force and step % self.every:
      return False
    saved = self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if saved:
      log.info("checkpoint: saving step %d to %s", step, self.directory)
    return saved

  def restore_latest(self, abstract_state: Any) -> Optional[Any]:
    """The newest readable checkpoint restored into ``abstract_state``'s
    structure and shardings, or None."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    for step in steps:
      try:
        state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
      except (ValueError, OSError, KeyError, RuntimeError) as e:
        log.warning(
          "checkpoint %d under %s cannot be restored (%s: %s); trying an older one",
          step,
          self.directory,
          type(e).__name__,
          str(e)[:200],
        )
        continue
      log.info("checkpoint: resumed from step %d", step)
      return state
    if steps:
      log.warning("no readable checkpoint under %s; starting from scratch", self.directory)
    return None

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, for restoring."""
  return jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), tree
  )
