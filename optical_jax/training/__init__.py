"""Training machinery: mesh and shardings, state and optimiser, pure train
steps per objective, checkpoints, metric writers."""
