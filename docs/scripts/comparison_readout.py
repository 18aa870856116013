"""DiffRank through the comparing projector's own read-out, without the LLM.

A model trained with ``comparison_weight`` learns a similarity read-out of its comparison
(steered by the question with a question gate). This scores DiffRank items with that
read-out as the benchmark scores P(YES) (Kendall tau-b per item, 95% bootstrap
interval): how much of the ranking the projector's comparison holds, before the frozen
LLM has to pass it on.

    .venv/bin/python docs/scripts/comparison_readout.py --model runs/train-comparison-only/model \
        --items runs/synthkitchen/diffrank_heldout.jsonl --videos runs/synthkitchen/videos
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained model folder")
    parser.add_argument("--items", type=Path, required=True, help="a DiffRank file to score")
    parser.add_argument("--videos", type=Path, required=True, help="where its clips resolve")
    args = parser.parse_args()

    from stepdiff.data.formats import ScorePrediction, read_diffrank
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.eval.score import MAIN_METRIC, score_records
    from stepdiff.model.build import load_model
    from stepdiff.model.stepdiff import _pair

    model = load_model(args.model)
    model.eval()
    items = read_diffrank(args.items)
    resolve = ClipResolver(args.videos)
    predictions = []
    with torch.no_grad():
        for item in items:
            count = len(item.targets)
            reference = model.clip_features([resolve(item.reference)]).expand(count, -1, -1, -1)
            targets = model.clip_features([resolve(t) for t in item.targets])  # (4, T, P, D)
            scores = model.component_scores("compare", _pair(reference, targets))  # (4,)
            predictions.append(ScorePrediction(tuple(float(s) for s in scores)))
    metric = score_records("diffrank", items, predictions).metric(MAIN_METRIC["diffrank"])
    low, high = metric.ci or (float("nan"), float("nan"))
    print(f"{args.items.name}: {len(items)} items, comparison read-out tau "
          f"{metric.value:.3f} [{low:.2f}, {high:.2f}]")  # fmt: skip


if __name__ == "__main__":
    main()
