"""The ``python -m`` commands, each a thin shell on absl flags and ``cli.run`` (one-line errors)
over the library call that does the work:

* ``python -m optical_jax.commands.fetch_data NAME... [--root DIR]``: datasets from their
  upstreams (``data/fetch.py``);
* ``python -m optical_jax.commands.build_collection NAME --source S --out DIR``: a test collection
  on disk (``testsets/registry.py``);
* ``python -m optical_jax.commands.recheck --workdir W``: a finished run's retrieval checks again
  (``dev_eval.reevaluate``);
* ``python -m optical_jax.commands.embed --model M --input F --output O.npy``: embeddings of a
  file of texts (``encode.encode_texts``).

train.py, eval.py and study.py sit beside the package. No library module has a ``main()``.
"""
