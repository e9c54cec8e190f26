"""The spec of a bitext mixture (data/mixture_spec.py): sources in spec order, 'all', and a
one-line error for every malformed entry."""

import re

import pytest

from optical_jax.data import mixture_spec


def test_parse_spec_order_and_all():
  got = [
    s.name
    for s in mixture_spec.parse_spec("mafand:all:kin+hau, flores200:all:yor, ciral:test-b:all")
  ]
  assert got == [
    "mafand:train:hau",
    "mafand:dev:kin",
    "mafand:dev:hau",
    "mafand:test:kin",
    "mafand:test:hau",
    "flores200:dev:yor",  # 'all' leaves FLORES devtest out
    "ciral:test-b:hau",
    "ciral:test-b:som",
    "ciral:test-b:swa",
    "ciral:test-b:yor",
  ]
  assert [s.name for s in mixture_spec.parse_spec("afriqa:all:all")] == [
    "afriqa:train:bem",
    "afriqa:train:hau",
    "afriqa:train:ibo",
    "afriqa:train:kin",
    "afriqa:train:twi",
    "afriqa:train:zul",
  ]  # no Yoruba: its train is the collection's test
  assert mixture_spec.parse_spec("flores200:devtest:hau")[0].split == "devtest"  # named: allowed


@pytest.mark.parametrize(
  "spec,message",
  [
    (
      "",
      "mixture spec '' is empty; expected 'corpus:splits:langs, ...' (e.g. "
      "'mafand:train+dev:hau+yor, flores200:dev:all')",
    ),
    (
      "mafand:train",
      "mixture spec entry 'mafand:train': expected corpus:splits:langs (e.g. "
      "'mafand:train+dev:hau+yor')",
    ),
    (
      "opus:train:hau",
      "mixture spec entry 'opus:train:hau': unknown corpus 'opus'; available: "
      "['afriqa', 'ciral', 'flores200', 'hornmt', 'mafand', 'menyo20k', "
      "'wmt24pp']",
    ),
    (
      "mafand:train:sw",
      "mixture spec entry 'mafand:train:sw': mafand has no language(s) ['sw']; "
      "available (ISO 639-3): ['hau', 'ibo', 'kin', 'swa', 'yor', 'zul']",
    ),
    (
      "mafand:valid:hau",
      "mixture spec entry 'mafand:valid:hau': mafand has no split(s) "
      "['valid']; available: ['train', 'dev', 'test'] (or 'all')",
    ),
    (
      "mafand:train:kin",
      "mixture spec entry 'mafand:train:kin': mafand kin has no split "
      "'train'; available: ['dev', 'test']",
    ),
    (
      "mafand:train+:hau",
      "mixture spec entry 'mafand:train+:hau': empty split in 'train+'; "
      "expected splits joined by '+', or 'all'",
    ),
    (
      "mafand:all+dev:hau",
      "mixture spec entry 'mafand:all+dev:hau': 'all' cannot be combined with other splits",
    ),
    (
      "mafand:train:hau, mafand:train+dev:hau",
      "mixture spec entry 'mafand:train+dev:hau': "
      "mafand:train:hau is already in entry 'mafand:train:hau'; name each source once",
    ),
    ("afriqa:all:yor", "mixture spec entry 'afriqa:all:yor': afriqa yor has no split to train on"),
  ],
)
def test_parse_spec_errors(spec, message):
  with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
    mixture_spec.parse_spec(spec)
