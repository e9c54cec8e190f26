"""Multi-host start: one ``jax.distributed.initialize`` call for every cluster we document.

* **Cloud TPU pods:** nothing to set; JAX detects the pod from the TPU VM's metadata.
  Run the same command on every worker (``gcloud ... ssh --worker=all``).
* **SLURM:** nothing to set; JAX reads ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS``,
  ``SLURM_PROCID`` and ``SLURM_LOCALID``. Start one task per node
  (``srun --ntasks-per-node=1``, each seeing all its GPUs) or one per GPU.
* **Anything else** (plain machines, containers): set ``JAX_COORDINATOR_ADDRESS``
  (``host:port`` of process 0, read by JAX itself) and this project's
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (JAX does not read these two; they
  are passed on here), and run the same command on every host.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import jax

NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def initialize_kwargs(env: Optional[Mapping[str, str]] = None) -> Dict[str, int]:
  """Keyword arguments for ``jax.distributed.initialize`` from the environment:
  ``num_processes`` and ``process_id`` when both variables are set, else none
  (JAX then detects TPU pods and SLURM itself).

  Raises:
    ValueError: only one of the two is set, or they are not integers in range.
  """
  env = os.environ if env is None else env
  n, i = env.get(NUM_PROCESSES_ENV), env.get(PROCESS_ID_ENV)
  if n is None and i is None:
    return {}
  if n is None or i is None:
    raise ValueError(
      f"set both {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV} (got "
      f"{NUM_PROCESSES_ENV}={n!r}, {PROCESS_ID_ENV}={i!r})"
    )
  try:
    num, pid = int(n), int(i)
  except ValueError as e:
    raise ValueError(
      f"{NUM_PROCESSES_ENV}={n!r} and {PROCESS_ID_ENV}={i!r} must be integers"
    ) from e
  if not 0 <= pid < num:
    raise ValueError(f"{PROCESS_ID_ENV}={pid} is not in [0, {NUM_PROCESSES_ENV}={num})")
  return {"num_processes": num, "process_id": pid}


def initialize() -> None:
  """``jax.distributed.initialize`` with :func:`initialize_kwargs`; call before any other JAX use."""
  jax.distributed.initialize(**initialize_kwargs())
