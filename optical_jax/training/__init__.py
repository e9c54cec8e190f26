"""Training machinery: the loop (``loop.py``), the student's start, interpolation and export
(``student.py``), the distillation and teacher stages, mesh and shardings, state and optimiser,
the pure train step, checkpoints, metric writers."""
