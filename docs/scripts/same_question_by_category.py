"""How DiffRank's P(YES) follows the rubric on training pairs, category by category.

For pairs of a datagen run (``pairs.jsonl``) whose clips carry SynthKitchen ground
truth, asks DiffRank's question ("Do these two videos show the same {g}? Answer YES or
NO.") for every category and prints, per category, the mean P(YES), its Spearman
correlation with the rubric's 0-5 score and its mean at each score: whether a model
trained on ``--same-questions graded`` QA fits them (base rate and direction).

    .venv/bin/python docs/scripts/same_question_by_category.py \
        --model runs/train-synthkitchen-compare-graded/model \
        --pairs runs/datagen-p16-graded/pairs.jsonl --clips runs/synthkitchen/clips.jsonl \
        --videos runs/synthkitchen/videos --count 60
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a saved StepDiff model")
    parser.add_argument("--pairs", type=Path, required=True, help="pairs.jsonl of a datagen run")
    parser.add_argument("--clips", type=Path, required=True, help="SynthKitchen clips.jsonl")
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--count", type=int, default=60, help="pairs read")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from stepdiff.data.questions import same_question
    from stepdiff.datagen.qa import SAME_QUESTIONS
    from stepdiff.datagen.stages import read_clip_list
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.model.build import load_model
    from stepdiff.synthkitchen.differences import similarity_scores

    specs = {e.clip_id: e.spec for e in read_clip_list(args.clips) if e.spec is not None}
    pairs = [json.loads(line) for line in args.pairs.read_text().splitlines() if line]
    random.Random(args.seed).shuffle(pairs)
    pairs = pairs[: args.count]
    resolve = ClipResolver(args.videos)
    model = load_model(args.model, feature_cache=FeatureCache())
    model.eval()
    reference = model.clip_features([resolve(p["reference"]) for p in pairs])  # (N, T, P, D)
    candidate = model.clip_features([resolve(p["candidate"]) for p in pairs])
    rubric = [similarity_scores(specs[p["reference"]], specs[p["candidate"]]) for p in pairs]

    print(f"{args.model}: {len(pairs)} pairs of {args.pairs}")
    print("| category | mean P(YES) | Spearman with score | mean P(YES) at score 0..5 |")
    print("|---|---|---|---|")
    for category in SAME_QUESTIONS:
        with torch.no_grad():
            p_yes = model.p_yes(
                reference, candidate, [same_question(category)] * len(pairs)
            ).numpy()
        scores = np.array([r[category] for r in rubric])
        by_score = " / ".join(
            f"{p_yes[scores == s].mean():.3f}" if (scores == s).any() else "-" for s in range(6)
        )
        rho = spearmanr(p_yes, scores)[0]
        print(f"| {category} | {p_yes.mean():.3f} | {rho:.3f} | {by_score} |")


if __name__ == "__main__":
    main()
