"""Multi-host start: the environment -> jax.distributed.initialize arguments, and a real
two-process run on CPU whose sharded train step matches one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from optical_jax.training.distributed import initialize_kwargs

REPO = Path(__file__).resolve().parents[2]


def test_initialize_kwargs_from_environment():
  assert initialize_kwargs({}) == {}  # TPU pods and SLURM: JAX detects them itself
  assert initialize_kwargs({"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}) == {
    "num_processes": 4,
    "process_id": 3,
  }
  with pytest.raises(ValueError, match="set both JAX_NUM_PROCESSES and JAX_PROCESS_ID"):
    initialize_kwargs({"JAX_NUM_PROCESSES": "4"})
  with pytest.raises(ValueError, match="must be integers"):
    initialize_kwargs({"JAX_NUM_PROCESSES": "four", "JAX_PROCESS_ID": "0"})
  with pytest.raises(ValueError, match=r"JAX_PROCESS_ID=4 is not in \[0, JAX_NUM_PROCESSES=4\)"):
    initialize_kwargs({"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "4"})


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  """Two CPU processes (2 devices each) joined by jax.distributed through the
  JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID route, a (data=2, fsdp=2) mesh
  over the 4 devices, each process feeding its half of every batch: the 3-step loss
  trajectory equals one process's within 1e-5 relative."""
  from train_fixtures import run_steps, single_device_mesh

  _, reference = run_steps(single_device_mesh(), "optical", steps=3)
  out = tmp_path / "losses.json"
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(
      os.environ,
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES="2",
      JAX_PROCESS_ID=str(pid),
    )
    procs.append(
      subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "multihost_worker.py"), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
      )
    )
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=300)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("the two processes did not finish in 300 s")
  assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
  got = json.loads(out.read_text())
  assert got["mesh"] == {"data": 2, "fsdp": 2}
  assert got["losses"] == pytest.approx(reference, rel=1e-5)
