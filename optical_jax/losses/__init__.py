"""Distillation objectives (``objectives.py``): OT (OPTICAL), the knowledge-distillation
baselines, the contrastive terms, and the teacher's InfoNCE (``contrastive.py``)."""
