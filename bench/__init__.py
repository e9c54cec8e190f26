"""Benchmarks that time optical_jax next to a reference implementation.

Run ``python bench/run.py --help``; ``bench/README.md`` says what each
benchmark measures and what its reference does.
"""
