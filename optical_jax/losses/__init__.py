"""Distillation objectives: OT (OPTICAL) and the knowledge-distillation baselines."""
