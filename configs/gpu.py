"""Starting point for GPU clusters (e.g. SLURM, 8 x H100 per node).

  srun --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 python train.py --config=configs/gpu.py

bf16 compute (fp32 params), batch 256 pairs per step spread over every GPU, no
rematerialisation (an e5-small or mBERT-base step fits easily), multi-host through
jax.distributed (SLURM is detected from its environment). Not yet measured here:
no GPU cluster was available; see issue 5.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dtype = "bfloat16"  # bf16 matmuls, fp32 params and optimiser state
  config.distributed = True  # jax.distributed.initialize() from the SLURM environment
  config.train.batch_size = 256  # global; must divide by the number of GPUs
  config.train.learning_rate = 5e-5  # larger batch, larger step
  config.eval.batch_size = 256
  # One Sinkhorn loop for the device's whole batch. Groups (the CPU default, 8) run one after
  # another; on an accelerator an iteration on a few small problems is launch-bound and costs
  # about what one on the whole batch does, so groups would only add iterations. Reasoned,
  # not yet measured (no accelerator was lent; bench/README.md has the GPU command).
  config.ot.group_size = 0
  return config
