"""The model card (``README.md``) of an exported encoder.

:func:`render_model_card` writes what an exported directory's ``optical_jax.json`` says (what it
was distilled from and how, pooling, prompts, output width) and how to load it with
sentence-transformers and with optical_jax; given a training work dir's records it adds what the
student was trained on (``bitext_manifest.json``: corpus, split, languages, pairs, license) and
its dev figures (``results.md``). :func:`write_model_card` rewrites ``<workdir>/student/README.md``
from those records once a run has them (train.py calls it after its evaluation).

Licenses come from the manifest, which the data readers fill from each corpus's PROVENANCE.md;
:data:`BITEXT_LICENSES` holds the same licenses by corpus name for a manifest row without one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from optical_jax.io import atomic_write_text

#: License of each bitext source and corpus (``../shared/data/*/PROVENANCE.md``), by the corpus
#: names of ``config.data.source`` and of mixture specs.
BITEXT_LICENSES = {
  "afriqa": "CC BY 4.0",
  "ciral": "Apache-2.0",
  "cldr": "Unicode License",
  "flores200": "CC BY-SA 4.0",
  "hornmt": "CC BY 4.0",
  "mafand": "CC BY-NC 4.0",
  "menyo20k": "CC BY-NC 4.0",
  "ntrex": "CC BY-SA 4.0",
  "tatoeba": "CC BY 2.0 FR",
  "tico19": "CC0 1.0",
  "tsv": "unknown (user-supplied file)",
  "wmt24pp": "Apache-2.0",
}

FRONT_MATTER = """---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags:
- sentence-transformers
- feature-extraction
- optical_jax
---
"""


def _training_rows(manifest: dict) -> List[dict]:
  """One row per (corpus, split): languages, training pairs and license."""
  rows: Dict[tuple, dict] = {}
  for s in manifest.get("sources", []):
    corpus = s.get("corpus", manifest.get("source", "?"))
    row = rows.setdefault(
      (corpus, s.get("split", "")),
      {
        "corpus": corpus,
        "split": s.get("split", ""),
        "langs": [],
        "train": 0,
        "license": s.get("license") or BITEXT_LICENSES.get(corpus, "unknown"),
      },
    )
    if s.get("lang") and s["lang"] not in row["langs"]:
      row["langs"].append(s["lang"])
    row["train"] += int(s.get("train", 0))
  return list(rows.values())


def _training_section(manifest: dict) -> List[str]:
  rows = _training_rows(manifest)
  lines = ["## Training data", ""]
  if not rows:
    return lines + ["Not recorded.", ""]
  lines += [
    "Bitext pairs (English and the foreign side), from the run's `bitext_manifest.json`:",
    "",
    "| corpus | split | languages | training pairs | license |",
    "|---|---|---|---|---|",
  ]
  lines += [
    f"| {r['corpus']} | {r['split']} | {', '.join(r['langs'])} | {r['train']} | {r['license']} |"
    for r in rows
  ]
  english = manifest.get("english") or {}
  if isinstance(english, dict) and english.get("train"):
    lines += ["", f"English-English pairs added: {english['train']} (training)."]
  sha = manifest.get("train_sha256")
  if sha:
    lines += ["", f"sha256 of the training pairs: `{sha}`."]
  licenses = sorted({r["license"] for r in rows})
  lines += [
    "",
    "The weights were trained on data under: " + "; ".join(licenses) + ". Check those terms "
    "(a NC license rules out commercial use; SA asks for the same license) before you "
    "redistribute or deploy the model.",
    "",
  ]
  return lines


def render_model_card(
  meta: dict,
  *,
  model: str = "",
  manifest: Optional[dict] = None,
  results_md: str = "",
) -> str:
  """The card's markdown.

  Args:
    meta: the export's ``optical_jax.json`` (pooling, prefixes, output_dim, teacher, method...).
    model: the model the student started from (``config.model``), if known.
    manifest: the run's ``bitext_manifest.json``, if any.
    results_md: the run's ``results.md`` (its dev figures), if any.
  """
  qp, dp = meta.get("query_prefix", ""), meta.get("doc_prefix", "")
  lines = [FRONT_MATTER, "# A retrieval encoder exported by optical_jax", ""]
  facts = []
  if model:
    facts.append(f"- Started from: `{model}`")
  if meta.get("teacher"):
    facts.append(f"- Distilled from the teacher `{meta['teacher']}` with `{meta.get('method')}`")
  if meta.get("query_only"):
    facts.append(
      f"- A query encoder: encode the documents with its teacher `{meta.get('teacher')}`"
      " (as a document encoder the student is worse than the teacher; optical_jax's eval.py"
      " refuses it as --doc_model)"
    )
  if meta.get("base"):
    facts.append(f"- Fine-tuned from `{meta['base']}` ({meta.get('ranker', '')} ranker)")
  facts.append(
    f"- Sentence vectors: {meta.get('pooling')} pooling"
    + (f", projected to {meta['output_dim']} dimensions" if meta.get("output_dim") else "")
    + (", L2-normalised (cosine)" if meta.get("normalize", True) else "")
  )
  facts.append(f"- Prompts: query `{qp!r}`, passage `{dp!r}`")
  facts.append(f"- Token limit: {meta.get('max_length')} (special tokens included)")
  lines += facts + [""]
  lines += [
    "## Use",
    "",
    "```python",
    "from sentence_transformers import SentenceTransformer",
    "",
    'model = SentenceTransformer("THIS_DIR")',
    'queries = model.encode(["..."], prompt_name="query")',
    'passages = model.encode(["..."], prompt_name="passage")',
    "```",
    "",
    "or with optical_jax (the same vectors, to 1e-5):",
    "",
    "```",
    "python -m optical_jax.commands.embed --model THIS_DIR --side query --normalize "
    "--input q.txt --output q.npy",
    "```",
    "",
  ]
  if manifest is not None:
    lines += _training_section(manifest)
  if results_md.strip():
    body = [("#" + ln) if ln.startswith("#") else ln for ln in results_md.strip().splitlines()]
    lines += ["## Evaluation (the run's results.md)", ""] + body + [""]
  return "\n".join(lines)


def write_model_card(workdir) -> Optional[Path]:
  """Rewrites ``<workdir>/student/README.md`` from the run's records (``student/optical_jax.json``,
  ``config.json``, ``bitext_manifest.json``, ``results.md``; each used where present). Returns the
  card's path, or None when the work dir has no exported student."""
  work = Path(workdir)
  meta_path = work / "student" / "optical_jax.json"
  if not meta_path.is_file():
    return None
  read = lambda name: json.loads((work / name).read_text(encoding="utf-8"))
  meta = json.loads(meta_path.read_text(encoding="utf-8"))
  model = read("config.json").get("model", "") if (work / "config.json").is_file() else ""
  manifest = read("bitext_manifest.json") if (work / "bitext_manifest.json").is_file() else None
  results = work / "results.md"
  card = render_model_card(
    meta,
    model=model,
    manifest=manifest,
    results_md=results.read_text(encoding="utf-8") if results.is_file() else "",
  )
  out = work / "student" / "README.md"
  atomic_write_text(out, card)
  return out
