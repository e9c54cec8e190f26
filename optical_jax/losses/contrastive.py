"""InfoNCE over retrieval scores: the teacher's fine-tuning loss on English (query, positive,
negative) triples (``losses/objectives.py: teacher_contrastive_loss``), scored by
``models/scoring.py`` (MaxSim or dense)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def contrastive_loss(
  scores: jax.Array, temperature: float = 0.05, labels: Optional[jax.Array] = None
):
  """InfoNCE. scores [B, D] (query i vs every positive and negative in the batch),
  the positive of query i at column ``labels[i]`` (default i). -> (loss, accuracy)."""
  if labels is None:
    labels = jnp.arange(scores.shape[0])
  logits = scores / temperature
  logp = jax.nn.log_softmax(logits, axis=-1)
  loss = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))
  acc = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
  return loss, acc
