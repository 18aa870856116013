"""Training data files for tiny training runs in the tests."""

from __future__ import annotations

import json
from pathlib import Path

from stepdiff.data.questions import difference_question


def write_pair_qa(benchmark: Path, out: Path, limit: int = 12) -> Path:
    """Pair QA lines from the SynthKitchen training pairs (question per category)."""
    lines = []
    for line in (benchmark / "train_pairs.jsonl").read_text().splitlines()[:limit]:
        pair = json.loads(line)
        category, diffs = next((c, d) for c, d in pair["differences"].items() if d)
        lines.append(
            {
                "reference": pair["reference"],
                "candidate": pair["candidate"],
                "question": difference_question(category),
                "answer": diffs[0]["captions"][0],
            }
        )
    path = out / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path
