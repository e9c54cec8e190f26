"""The pure train step: one update rule for every objective.

``train_step(state, batch, teacher_params, *, loss_fn, optimizer)`` takes any loss of
``losses/objectives.py`` (``loss_fn(params, teacher_params, batch, rng) -> (loss, metrics)``,
bound with ``make_loss``) or the teacher's fine-tuning loss. ``training/jitted_step.py`` jits
``functools.partial(train_step, loss_fn=..., optimizer=...)`` with shardings and
``donate_argnums=0``; the batch is the loss's (``losses/objectives.py``).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import jax
import jax.numpy as jnp
import optax

from optical_jax.training.state import TrainState


def train_step(
  state: TrainState,
  batch: Dict[str, jax.Array],
  teacher_params,
  *,
  loss_fn: Callable,
  optimizer: optax.GradientTransformation,
) -> Tuple[TrainState, Dict[str, jax.Array]]:
  """One optimiser step. Pure: same inputs, same outputs.

  Randomness (dropout) comes from ``fold_in(state.rng, state.step)``.
  Returns the new state and scalar metrics (``loss``, ``grad_norm`` and the
  objective's own).
  """
  rng = jax.random.fold_in(state.rng, state.step)
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    state.params, teacher_params, batch, rng
  )
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics
