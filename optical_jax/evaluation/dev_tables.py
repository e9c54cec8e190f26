"""The retrieval checks after training (``optical_jax/dev_eval.py``) as markdown tables."""

from __future__ import annotations

from typing import Dict

from optical_jax.evaluation import oracle_gap


def format_markdown(summaries: Dict[str, dict], metric: str = "MAP") -> str:
  """The retrieval checks as markdown tables (appended to results.md)."""
  lines = []
  for key, s in summaries.items():
    if s.get("kind") == "bitext-matching" or key == "tatoeba":  # (no kind: recorded before)
      lines += [
        f"\n## {key}: {s['description']}",
        "",
        "| lang | n | zero-shot f2e | student f2e | zero-shot e2f | student e2f | "
        "f2e gained / lost | p (McNemar) |",
        "|---|---|---|---|---|---|---|---|",
      ]
      lines += [
        f"| {l} | {r['n']} | {r['zero_shot_f2e']:.3f} | {r['student_f2e']:.3f} | "
        f"{r['zero_shot_e2f']:.3f} | {r['student_e2f']:.3f} | {r['f2e_gained']} / "
        f"{r['f2e_lost']} | {r['p_mcnemar']:.2g} |"
        for l, r in s["langs"].items()
      ]
    elif "closed" in s:
      c = s["closed"]
      langs = list(c["langs"])
      lines += [
        f"\n## {key}: {s['description']}",
        "",
        oracle_gap.format_table({"student": c}, langs, metric),
        "",
        "Student's English-question MAP (zero-shot): "
        + ", ".join(
          f"{l} {s['english_student'][l]:.3f} ({s['english_zero_shot'][l]:.3f})" for l in langs
        ),
        f"Paired t-test vs zero-shot over all questions: p = {s['vs_zero_shot']['all']:.2g}",
      ]
    else:
      lines += [
        f"\n## {key}: {s['description']}",
        "",
        "| lang | resource | zero-shot | student | delta | p |",
        "|---|---|---|---|---|---|",
      ]
      lines += [
        f"| {l} | {r['resource']} | {r['zero_shot']:.4f} | {r['student']:.4f} | "
        f"{r['delta']:+.4f} | {r['p']:.2g} |"
        for l, r in s["langs"].items()
      ]
      lines.append(
        f"\nMean delta: low {s['low_delta']:+.4f}, high {s['high_delta']:+.4f} "
        f"(worst high-resource language {s['worst_high_delta']:+.4f})."
      )
  return "\n".join(lines) + "\n"
