"""XLA settings of the test processes (set by tests/conftest.py) for the processes that tests start
with an environment of their own: LLVM without its expensive passes, which halves the compile time
of the train step (floating point semantics are the same: neither setting allows reassociation or
fast math)."""

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def xla_flags(devices: int = 1) -> str:
  """XLA_FLAGS for a test's child process on ``devices`` simulated CPU devices."""
  return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
