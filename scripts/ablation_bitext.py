"""The bitext of the first ablations in docs/RESEARCH.md, as TSV files per recipe and language.

  python scripts/ablation_bitext.py OUT [CAP]     # OUT/{q,s,qs}/<lang>.tsv

These runs predate the `mixture` source; the same sources are now a `config.data.mixture` spec
(docs/RESEARCH.md gives both). Recipes:

* ``q``: query-style pairs only: AfriQA train questions (bem hau ibo kin twi zul) and CIRAL topics
  (hau som swa yor);
* ``s``: sentences: FLORES-200 dev (+ MAFAND-MT train+dev where it has the language);
* ``qs``: ``q`` plus a seeded CAP (3000) of ``s`` per language.

Pairs are deduplicated per language (normalised) and any pair with a side equal to an AfriQA or
FLORES-200 devtest query or passage is dropped (train.py's overlap guard then checks again).
"""

import pathlib
import random
import re
import sys
import unicodedata

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from optical_jax.data.afriqa import read_afriqa  # noqa: E402
from optical_jax.testsets.afriqa_passages import afriqa_collection  # noqa: E402
from optical_jax.testsets.builders import flores_collection  # noqa: E402

S = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = {
  "hau": "hau_Latn",
  "ibo": "ibo_Latn",
  "kin": "kin_Latn",
  "yor": "yor_Latn",
  "zul": "zul_Latn",
  "swa": "swh_Latn",
  "som": "som_Latn",
  "twi": "twi_Latn",
  "bem": "bem_Latn",
}


def norm(t):
  return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", t).casefold()).strip()


def afriqa_questions(lang):
  rows, _ = read_afriqa(S / "afriqa_dev", lang, "train")
  return [(r.english, r.native) for r in rows]


def ciral(code):
  out = []
  for split in ("test-a", "test-b"):

    def read(name):
      lines = (S / f"ciral_queries/{code}/{split}.{name}.tsv").read_text(encoding="utf-8")
      return dict(l.split("\t", 1) for l in lines.splitlines() if l.strip())

    en, fo = read("eng"), read(code)
    out += [(en[q].strip(), fo[q].strip()) for q in en if q in fo]
  return out


def flores(lang):
  en = (S / "flores200/dev/eng_Latn.dev").read_text(encoding="utf-8").splitlines()
  return list(
    zip(en, (S / f"flores200/dev/{FLORES[lang]}.dev").read_text(encoding="utf-8").splitlines())
  )


def mafand(lang):
  out = []
  for split in ("train", "dev"):
    p = S / f"mafand_mt/en-{lang}/{split}.en"
    if p.exists():
      out += list(
        zip(
          p.read_text(encoding="utf-8").splitlines(),
          (S / f"mafand_mt/en-{lang}/{split}.{lang}").read_text(encoding="utf-8").splitlines(),
        )
      )
  return out


def main(out, cap=3000):
  q = {
    "hau": afriqa_questions("hau") + ciral("ha"),
    "ibo": afriqa_questions("ibo"),
    "kin": afriqa_questions("kin"),
    "zul": afriqa_questions("zul"),
    "bem": afriqa_questions("bem"),
    "twi": afriqa_questions("twi"),
    "yor": ciral("yo"),
    "som": ciral("so"),
    "swa": ciral("sw"),
  }
  s = {l: flores(l) + mafand(l) for l in ("hau", "ibo", "kin", "yor", "zul", "swa")}
  s.update({l: flores(l) for l in ("twi", "bem", "som")})
  rng = random.Random(0)
  qs = {}
  for l in sorted(set(q) | set(s)):
    sent = list(s.get(l, []))
    rng.shuffle(sent)
    qs[l] = q.get(l, []) + sent[:cap]
  evaluated = set()
  for c in (afriqa_collection(S / "afriqa_dev"), flores_collection(S / "flores200")):
    evaluated |= {norm(t) for qq in c.queries.values() for t in qq.values()}
    evaluated |= {norm(t) for t in c.docs.values()}
  for name, recipe in (("q", q), ("s", s), ("qs", qs)):
    folder = pathlib.Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    for lang, pairs in recipe.items():
      seen, keep = set(), []
      for e, f in pairs:
        e, f = e.replace("\t", " ").strip(), f.replace("\t", " ").strip()
        key = (norm(e), norm(f))
        if e and f and key not in seen and not {norm(e), norm(f)} & evaluated:
          seen.add(key)
          keep.append((e, f))
      (folder / f"{lang}.tsv").write_text("".join(f"{e}\t{f}\n" for e, f in keep), encoding="utf-8")
      print(name, lang, len(keep))


if __name__ == "__main__":
  main(sys.argv[1], *(int(x) for x in sys.argv[2:]))
