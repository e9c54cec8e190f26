"""Flax encoders (BERT and XLM-RoBERTa families) and pooling."""

from optical_jax.models.config import EncoderConfig
from optical_jax.models.encoder import Encoder, EncoderOutput, position_ids
from optical_jax.models.pooling import POOLINGS, l2_normalize, pool

__all__ = [
  "EncoderConfig",
  "Encoder",
  "EncoderOutput",
  "position_ids",
  "POOLINGS",
  "l2_normalize",
  "pool",
]
