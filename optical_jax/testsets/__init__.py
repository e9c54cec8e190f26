"""Retrieval test collections: their on-disk format and TREC files, the builders, the TFDS
builders, ``irds:`` datasets, and the one registry by name (``registry.py``) every caller asks."""
