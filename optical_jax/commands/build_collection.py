"""The command that writes test collections (:mod:`optical_jax.testsets.builders`; which names
it takes and how each is built: :mod:`optical_jax.testsets.registry`)::

  python -m optical_jax.commands.build_collection ntrex --source ../shared/data/ntrex128 --out DIR \\
      --langs swa,som,yor,hau,fil,mar,deu,fra,rus,zho,arb,hin,spa [--direction english_query]
  python -m optical_jax.commands.build_collection tico19 --source ../shared/data/tico19/original_zips \\
      --out DIR --langs sw,so,ha,mr,tl,fr,es-LA,ru,zh,ar,hi [--window 5 --stride 5]
  python -m optical_jax.commands.build_collection flores --source ../shared/data/flores200 --out DIR \\
      [--split devtest] [--langs swa,som,...]
  python -m optical_jax.commands.build_collection afriqa --source ../shared/data/afriqa_dev --out DIR
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from optical_jax import cli
from optical_jax.errors import UsageError
from optical_jax.testsets import registry

#: The flags of one collection only -> that collection.
_OWN_FLAGS = dict(
  split="flores", direction="ntrex", no_title="ntrex", window="tico19", stride="tico19"
)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command line (module docstring; ``argv``: the arguments after the program name, default
  ``sys.argv[1:]``); prints what it wrote. Errors are one line (``cli.run``)."""
  from absl import flags  # pylint: disable=import-outside-toplevel

  f = flags.FlagValues()
  define = dict(flag_values=f)
  flags.DEFINE_string(
    "source", None, "The corpus root (or TICO-19's folder of TMX zips).", **define
  )
  flags.DEFINE_string("out", None, "The collection folder to write.", **define)
  flags.DEFINE_string(
    "langs", "", "Comma-separated language codes (ntrex, tico19: required; else all).", **define
  )
  flags.DEFINE_bool("overwrite", False, "Replace an existing --out.", **define)
  flags.DEFINE_enum("split", "devtest", ["dev", "devtest"], "flores: the split.", **define)
  flags.DEFINE_enum(
    "direction", "foreign_query", ["foreign_query", "english_query"], "ntrex only.", **define
  )
  flags.DEFINE_bool("no_title", False, "ntrex: documents without their headline.", **define)
  flags.DEFINE_integer("window", 5, "tico19: sentences per document.", **define)
  flags.DEFINE_integer("stride", 5, "tico19: sentences between document starts.", **define)
  flags.mark_flags_as_required(["source", "out"], flag_values=f)
  return cli.run(_command, positional=True, prog="build_collection", flag_values=f, argv=argv)


def _command(f, rest) -> int:
  names = registry.BUILDABLE
  if len(rest) != 1 or rest[0] not in names:
    raise UsageError(f"expected one collection name, one of {names}, before the flags; got {rest}")
  name = rest[0]
  for flag, owner in _OWN_FLAGS.items():
    if f[flag].present and owner != name:
      raise UsageError(f"--{flag} is a flag of {owner}, not of {name}")
  langs = list(registry.parse_names(f.langs))
  if registry.REGISTRY[name].langs_required and not langs:
    raise UsageError(f"{name}: --langs is required")
  own = {flag: f[flag].value for flag, owner in _OWN_FLAGS.items() if owner == name}
  if name == "ntrex":
    own["with_title"] = not own.pop("no_title")
  written = registry.build(name, f.source, f.out, langs, overwrite=f.overwrite, **own)
  for path, coll in written.items():
    print(
      f"{path}: {len(coll.doc_ids)} documents, queries "
      f"{ {lang: len(q) for lang, q in coll.queries.items()} }, {len(coll.qrels)} judged"
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
