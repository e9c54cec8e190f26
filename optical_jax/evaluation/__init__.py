"""Evaluation: bitext matching (alignment check) and retrieval metrics."""
