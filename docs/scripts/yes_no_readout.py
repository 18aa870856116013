"""Does a trained model's yes/no answer follow the pair? Two read-outs of P(yes).

1. Training form: the pair QA's own yes/no questions ("Did both videos use the same
   tool?" -> "Yes, ..." / "No, ..."), P("Yes") against "No": its ROC AUC against the
   true answer, and its mean with each reference paired with itself (nothing differs)
   and with another row's candidate. The same for closed-form QA ("... Answer YES or
   NO." -> "YES" / "NO", from ``stepdiff datagen run --same-questions``) if there are any.
2. Benchmark form: DiffRank's "Do these two videos show the same {category}? Answer YES
   or NO.", P("YES") for the 4 targets of each item: how much it varies inside an item,
   and its Kendall tau against the annotated scores next to that of a training-free
   ranking by the distance between the clips' mean frame features.

    .venv/bin/python docs/scripts/yes_no_readout.py --model runs/train-synthkitchen/model \
        --qa runs/datagen/qa.jsonl --diffrank runs/synthkitchen/diffrank_heldout.jsonl \
        --videos runs/synthkitchen/videos
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
    parser.add_argument("--diffrank", type=Path, required=True, help="DiffRank JSONL")
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=96, help="yes/no training QA")
    parser.add_argument("--items", type=int, default=30, help="DiffRank items")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from stepdiff.data.questions import same_question
    from stepdiff.datagen.qa import is_closed_form
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.model.build import load_model

    resolve = ClipResolver(args.videos)
    model = load_model(args.model, feature_cache=FeatureCache())
    model.eval()

    rows = [json.loads(line) for line in args.qa.read_text().splitlines() if line.strip()]
    long_form = [r for r in rows if r["answer"].startswith(("Yes", "No"))]
    closed_form = [r for r in rows if is_closed_form(r["question"], r["answer"])]
    for picked in (long_form, closed_form):
        random.Random(args.seed).shuffle(picked)
    print(f"{args.model}")
    for form, (yes, no), picked in (
        ("long-form", ("Yes", "No"), long_form),
        ("closed-form", ("YES", "NO"), closed_form),
    ):
        if picked:
            training_form(model, resolve, picked[: args.samples], yes, no, form)

    items = [json.loads(line) for line in args.diffrank.read_text().splitlines() if line]
    random.Random(args.seed).shuffle(items)
    items = items[: args.items]
    means_yes, spreads, model_taus, distance_taus = [], [], [], []
    for item in items:
        clips = [item["reference"], *item["targets"]]
        features = model.clip_features([resolve(c) for c in clips])  # (5, T, P, D)
        count = len(item["targets"])
        with torch.no_grad():
            scores = model.p_yes(
                features[:1].expand(count, *features.shape[1:]),
                features[1:],
                [same_question(item["category"])] * count,
            ).numpy()
        means = features.mean(dim=(1, 2))  # (5, D)
        closeness = -(means[1:] - means[:1]).norm(dim=-1).numpy()
        means_yes.append(scores.mean())
        spreads.append(scores.max() - scores.min())
        model_taus.append(kendalltau(scores, item["scores"])[0])
        distance_taus.append(kendalltau(closeness, item["scores"])[0])
    print(f"\n{len(items)} DiffRank items of {args.diffrank}")
    print("| P(YES) mean | P(YES) spread in an item (median) | tau of P(YES) | tau of distance |")
    print("|---|---|---|---|")
    print(
        f"| {np.mean(means_yes):.3f} | {np.median(spreads):.4f} "
        f"| {np.nanmean(model_taus):.3f} | {np.nanmean(distance_taus):.3f} |"
    )


def roc_auc(truth, scores) -> float:
    """ROC AUC of ``scores`` against the boolean ``truth``: the Mann-Whitney U of the
    positives' scores over the negatives', as a share of all positive-negative pairs
    (a tie counts half). scikit-learn's roc_auc_score, without scikit-learn."""
    from scipy.stats import mannwhitneyu

    positive, negative = scores[truth], scores[~truth]
    return float(mannwhitneyu(positive, negative).statistic) / (len(positive) * len(negative))


def training_form(model, resolve, rows: list[dict], yes: str, no: str, form: str) -> None:
    """Read-out 1 on ``rows`` (yes/no training QA answered with ``yes`` or ``no``)."""
    import numpy as np
    import torch

    ref = model.clip_features([resolve(r["reference"]) for r in rows])  # (N, T, P, D)
    cand = model.clip_features([resolve(r["candidate"]) for r in rows])
    questions = [r["question"] for r in rows]
    truth = np.array([r["answer"].startswith(yes) for r in rows])
    other = torch.roll(torch.arange(len(rows)), 1)  # each row gets the previous row's candidate

    def p_yes(first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model.p_yes(first, second, questions, yes=yes, no=no).numpy()

    own = p_yes(ref, cand)
    print(f"\n{len(rows)} {form} yes/no training QA ({truth.mean():.2f} {yes})")
    print(f"| AUC of P({yes}) | P({yes}) own pair | reference twice | other candidate |")
    print("|---|---|---|---|")
    print(
        f"| {roc_auc(truth, own):.3f} | {own.mean():.3f} | {p_yes(ref, ref).mean():.3f} "
        f"| {p_yes(ref, cand[other]).mean():.3f} |"
    )


if __name__ == "__main__":
    main()
