"""Starting point for TPU pods (e.g. v4-32: 16 chips over 4 hosts).

  gcloud compute tpus tpu-vm ssh NAME --worker=all --command="cd optical_jax && python train.py --config=configs/tpu_pod.py"

bf16 compute, batch 1024 pairs, parameters sharded over a 4-way fsdp axis, blocks
rematerialised, multi-host through jax.distributed (TPU pods are detected automatically).
Not yet measured here: no TPU was available; see issue 5.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dtype = "bfloat16"  # bf16 on the MXU, fp32 params
  config.remat = True  # recompute block activations in the backward pass: room for the batch
  config.layer_unroll = 1  # one compiled block: short compiles on every host
  config.distributed = True  # one process per host, same command on every worker
  config.train.batch_size = 1024  # global; divisible by data x fsdp
  config.train.learning_rate = 1e-4
  config.train.unpad_multiple = 128  # token capacities in whole MXU tiles
  config.mesh.fsdp = 4  # shard parameters and optimiser state 4 ways
  config.eval.batch_size = 512
  config.ot.group_size = (
    0  # one Sinkhorn loop per device's batch, as in configs/gpu.py (why: there)
  )
  return config
