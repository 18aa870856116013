"""What a trained question gate does: its channel weights for DiffRank's six questions.

Prints, per category, the gate's mean, spread and range over the encoder channels for
DiffRank's question ("Do these two videos show the same {g}? Answer YES or NO."), and
the mean absolute difference per channel between every two categories' gates: a gate
that routes by category differs between questions, one that learnt a shared weighting
does not.

    .venv/bin/python benchmarks/question_gate_readout.py \
        --model runs/train-synthkitchen-compare-gated/model
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model with a question gate")
    args = parser.parse_args()

    import torch

    from stepdiff.data.questions import same_question
    from stepdiff.datagen.qa import SAME_QUESTIONS
    from stepdiff.model.build import load_model

    model = load_model(args.model)
    if not model.question_gated:
        raise SystemExit(f"{args.model}: the projector has no question gate")
    categories = list(SAME_QUESTIONS)
    with torch.no_grad():
        summaries = model.question_summaries([same_question(c) for c in categories])  # (6, H)
        gates = model.projector_module.question_gates(summaries)  # (6, D)
    print("| category | mean | std | min | max |\n|---|---|---|---|---|")
    for category, gate in zip(categories, gates, strict=True):
        print(
            f"| {category} | {gate.mean():.3f} | {gate.std():.3f} | {gate.min():.3f} "
            f"| {gate.max():.3f} |"
        )
    apart = (gates[:, None] - gates[None]).abs().mean(dim=-1)  # (6, 6)
    print("\nmean |gate difference| per channel between categories")
    print("| | " + " | ".join(categories) + " |")
    print("|---" * (len(categories) + 1) + "|")
    for category, row in zip(categories, apart, strict=True):
        print(f"| {category} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
