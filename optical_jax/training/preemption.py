"""Save on preemption: SIGTERM or SIGINT ends training at a step boundary, every host at the same one.

A preempted TPU VM, a Slurm job past its time or a Kubernetes pod being evicted gets SIGTERM and a
short grace period. :class:`StopOnSignal` (entered by ``loop.fit`` around its step loop)
turns the signal into a request; the loop asks :meth:`StopOnSignal.reached` after each step, and
when it says yes it finishes that step, saves a checkpoint of it synchronously, closes the metric
log and raises :class:`optical_jax.errors.Preempted`, which the entry points print as one line
``<cli>: preempted at step N; rerun the same command to resume`` with exit status 75
(``errors.PREEMPTED_EXIT``). The rerun resumes from that checkpoint (its data position is the
step), so it ends bit-identical to a run that was never stopped.

How the hosts agree on N:

* **One process:** the signal handler sets a flag; the step after which it is seen is N.
* **Several processes** (``jax.distributed``): JAX's preemption sync manager, which
  ``jax.distributed.initialize`` starts with the coordination service. Its notifier owns SIGTERM
  (so this module installs no SIGTERM handler there); when any process gets one, the notice
  goes to all of them, and ``multihost_utils.reached_preemption_sync_point(step)``, called by
  every process after every step, is true on all of them at the same step (the first one all can
  still reach). SIGINT is forwarded to the process itself as SIGTERM, so Ctrl-C on one host stops
  all the same way. Checked on CPU with two processes on localhost
  (``tests/training/test_preemption.py``), jax 0.10.
* **Several processes without the sync manager** (``jax_enable_preemption_service=False``): the
  flags are all-gathered (``multihost_utils.process_allgather``) on the steps where the loop
  fetches metrics anyway (log and checkpoint steps), and N is the first such step at which any
  process has one, so a host-to-device sync is never added to the other steps.

A second SIGINT or SIGTERM after the first gets the handler that was there before (Ctrl-C twice:
a KeyboardInterrupt now, without the save). Handlers can only be set from the main thread;
elsewhere (a notebook's worker thread) nothing is installed and training runs as before.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax
import numpy as np

log = logging.getLogger(__name__)

#: Fault injection for the tests: the process sends itself SIGTERM right after step N is
#: dispatched (like a scheduler's notice arriving mid-run).
TERM_ENV = "OPTICAL_JAX_SIGTERM_AT_STEP"

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _sync_manager():
  """JAX's preemption sync manager when ``jax.distributed`` started one, else None."""
  from jax._src import distributed  # pylint: disable=import-outside-toplevel

  return getattr(distributed.global_state, "preemption_sync_manager", None)


class StopOnSignal:
  """``with StopOnSignal() as stop:`` ... ``if stop.reached(step, synced): save, stop``.

  Attributes:
    mode: ``"local"`` (one process), ``"jax"`` (JAX's sync point) or ``"allgather"``
      (several processes without it); ``"off"`` outside the main thread.
    requested: the signal that arrived here (a number), or None.
  """

  def __init__(self):
    self.requested = None
    self._previous = {}
    self.mode = "local"

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is not threading.main_thread():
      self.mode = "off"
      return self
    if jax.process_count() > 1:
      self.mode = "jax" if _sync_manager() is not None else "allgather"
    for sig in SIGNALS:
      if self.mode == "jax" and sig == signal.SIGTERM:
        continue  # JAX's preemption notifier handles SIGTERM on every process
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    self._restore()

  def _restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    self._restore()  # a second signal gets the previous handler (Ctrl-C twice: stop now)
    name = signal.Signals(signum).name
    log.warning(
      "%s received: stopping after the current step with a checkpoint (again: stop now)", name
    )
    self.requested = signum
    if self.mode == "jax":  # a SIGINT: JAX's notifier listens for SIGTERM, and tells every process
      os.kill(os.getpid(), signal.SIGTERM)

  def reached(self, step: int, synced: bool) -> bool:
    """Whether to stop after ``step`` (1-based: steps done), the same answer on every process.
    Call it after every step, on every process; ``synced``: the loop fetches metrics at this
    step anyway (the all-gather mode agrees only there)."""
    if self.mode == "jax":
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

      return bool(multihost_utils.reached_preemption_sync_point(step))
    if self.mode == "allgather":
      if not synced:
        return False
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

      flags = multihost_utils.process_allgather(np.int32(self.requested is not None))
      return bool(np.any(flags))
    return self.requested is not None


def inject(step: int) -> None:
  """Sends this process SIGTERM when :data:`TERM_ENV` names ``step`` (tests only)."""
  if os.environ.get(TERM_ENV) == str(step):
    os.kill(os.getpid(), signal.SIGTERM)
