"""How much of DiffRank the frame differences carry: a linear probe of the comparison.

For training pairs of a datagen run (``pairs.jsonl``) whose clips carry SynthKitchen
ground truth, takes the summary the comparing projector reads in its order-free form
(standardised mean frame features, subtracted frame by frame: per channel the mean
absolute difference, and the absolute value of the mean signed one, whose sign the
projector keeps to tell which video is which), fits a ridge regression to the rubric's
0-5 similarity, one per category and one to the mean over categories, and scores
held-out DiffRank items with it as the benchmark does (Kendall tau-b per item, 95%
bootstrap interval), beside the feature distance. It uses training labels only: what a
model that reads this summary and the question could reach, and how much of it needs
the question's category.

    .venv/bin/python docs/scripts/comparison_probe.py --pairs runs/datagen-p16/pairs.jsonl \
        --data runs/synthkitchen --items runs/synthkitchen/diffrank_heldout.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def ridge(x: np.ndarray, y: np.ndarray, strength: float) -> Callable[[np.ndarray], np.ndarray]:
    """Ridge regression on standardised features (N, F) -> targets (N,); a predictor."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    weights = np.linalg.solve(z.T @ z + strength * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda new: ((new - mean) / std) @ weights + y.mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="pairs.jsonl of a datagen run")
    parser.add_argument("--data", type=Path, required=True, help="a SynthKitchen build")
    parser.add_argument("--items", type=Path, required=True, help="a DiffRank file to score")
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--strength", type=float, nargs="+", default=[100.0, 1000.0, 10000.0])
    args = parser.parse_args()

    from stepdiff.data.formats import ScorePrediction, read_diffrank
    from stepdiff.datagen.stages import read_clip_list
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.encoders.featurize import ClipFeaturizer
    from stepdiff.encoders.registry import build_frame_encoder
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.eval.score import MAIN_METRIC, score_records
    from stepdiff.synthkitchen.differences import similarity_scores

    specs = {e.clip_id: e.spec for e in read_clip_list(args.data / "clips.jsonl") if e.spec}
    pairs = [json.loads(line) for line in args.pairs.read_text().splitlines() if line]
    items = read_diffrank(args.items)
    clips = sorted(
        {p[k] for p in pairs for k in ("reference", "candidate")}
        | {c for item in items for c in (item.reference, *item.targets)}
    )
    resolve = ClipResolver(args.data / "videos")
    featurizer = ClipFeaturizer(build_frame_encoder(args.encoder), args.frames, FeatureCache())
    frames = {}  # clip id -> (T, D): each frame's mean token
    for start in range(0, len(clips), 16):
        chunk = clips[start : start + 16]
        features = featurizer([resolve(c) for c in chunk]).float().mean(dim=2)  # (B, T, D)
        frames.update(zip(chunk, features.numpy(), strict=True))
    training = np.concatenate([frames[p[k]] for p in pairs for k in ("reference", "candidate")])
    mean, std = training.mean(0), training.std(0) + 1e-3

    def summary(reference: str, candidate: str) -> np.ndarray:
        """The comparing projector's summary, signs dropped: (2D,) from two clips' (T, D)
        frame features (standardised here by the training pairs' frames)."""
        difference = (frames[reference] - mean) / std - (frames[candidate] - mean) / std
        return np.concatenate([np.abs(difference).mean(0), np.abs(difference.mean(0))])

    x = np.stack([summary(p["reference"], p["candidate"]) for p in pairs])  # (N, 2D)
    rubric = [similarity_scores(specs[p["reference"]], specs[p["candidate"]]) for p in pairs]
    categories = sorted({item.category for item in items})
    targets = {c: np.array([r[c] for r in rubric], dtype=float) for c in categories}
    overall = np.mean([list(r.values()) for r in rubric], axis=1)
    rows = [[summary(item.reference, t) for t in item.targets] for item in items]

    def tau(score: Callable[[int, np.ndarray], np.ndarray]) -> str:
        predictions = [
            ScorePrediction(tuple(float(s) for s in score(i, np.stack(row))))
            for i, row in enumerate(rows)
        ]
        metric = score_records("diffrank", items, predictions).metric(MAIN_METRIC["diffrank"])
        low, high = metric.ci or (float("nan"), float("nan"))
        return f"{metric.value:.3f} [{low:.2f}, {high:.2f}]"

    print(f"{len(pairs)} training pairs, {len(items)} items of {args.items}\n")
    print("| read-out of the comparison summary | held-out tau |\n|---|---|")
    distance = tau(
        lambda i, row: -np.array(
            [np.linalg.norm(frames[items[i].reference].mean(0) - frames[t].mean(0))
             for t in items[i].targets]
        )
    )  # fmt: skip
    print(f"| feature distance (no training) | {distance} |")
    for strength in args.strength:
        per_category = {c: ridge(x, targets[c], strength) for c in categories}
        pooled = ridge(x, overall, strength)
        pooled_tau = tau(lambda i, row, pooled=pooled: pooled(row))
        category_tau = tau(
            lambda i, row, per_category=per_category: per_category[items[i].category](row)
        )
        print(f"| ridge {strength:g}, mean over categories | {pooled_tau} |")
        print(f"| ridge {strength:g}, one per category | {category_tau} |")


if __name__ == "__main__":
    main()
