"""Does a trained model read the videos? Answer log-likelihood with the right pair of
videos against the same answers with the pairs shuffled.

A model that has only learnt the answers' wording scores both alike; one that reads the
videos gives its own pair's answer a higher likelihood. Reports nats per answer.

    .venv/bin/python docs/scripts/video_reliance.py --model runs/train-synthkitchen/model \
        --qa runs/datagen/qa.jsonl --videos runs/synthkitchen/videos
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a saved StepDiff model")
    parser.add_argument("--qa", type=Path, required=True, help="pair QA JSONL")
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.model.build import load_model

    rows = [json.loads(line) for line in args.qa.read_text().splitlines() if line.strip()]
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.samples]
    resolve = ClipResolver(args.videos)
    model = load_model(args.model, feature_cache=FeatureCache())
    model.eval()
    ref = model.clip_features([resolve(r["reference"]) for r in rows])  # (N, T, P, D)
    cand = model.clip_features([resolve(r["candidate"]) for r in rows])
    questions = [r["question"] for r in rows]
    answers = [r["answer"] for r in rows]
    shuffled = list(range(len(rows)))
    random.Random(args.seed + 1).shuffle(shuffled)
    right = wrong = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), 8):
            own = slice(start, start + 8)
            other = shuffled[start : start + 8]
            q, a = questions[own], answers[own]
            right += float(model.loglik(ref[own], cand[own], q, a, share_prefix=False).sum())
            wrong += float(model.loglik(ref[other], cand[other], q, a, share_prefix=False).sum())
    count = len(rows)
    print(f"{args.model}: {count} answers")
    print("| right videos | shuffled videos | gap |\n|---|---|---|")
    print(f"| {right / count:.2f} | {wrong / count:.2f} | {(right - wrong) / count:.3f} |")


if __name__ == "__main__":
    main()
