"""Do the frozen frame features carry what the answers need? A linear probe per attribute.

Mean-pools each SynthKitchen clip's encoder tokens, fits a multinomial logistic regression
(L-BFGS, L2) per clip attribute on the training clips, and reports accuracy on the test
and held-out clips beside the majority-class rate.

    .venv/bin/python docs/scripts/probe_features.py --data runs/synthkitchen
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ATTRIBUTES = (
    "keystep", "tool", "tool_color", "vessel", "vessel_material", "ingredient",
    "ingredient_color", "quantity", "motion", "speed", "doneness", "final_state", "plate",
    "garnish",
)  # fmt: skip


def probe_accuracy(
    train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]
) -> float:
    """Accuracy of a standardised, L2-regularised multinomial logistic regression."""
    classes = sorted(set(train_y))
    index = {name: i for i, name in enumerate(classes)}
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    features = torch.tensor((train_x - mean) / std, dtype=torch.float32)  # (N, D)
    held = torch.tensor((test_x - mean) / std, dtype=torch.float32)  # (M, D)
    targets = torch.tensor([index[y] for y in train_y])
    weight = torch.zeros(features.shape[1], len(classes), requires_grad=True)
    bias = torch.zeros(len(classes), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = features @ weight + bias
        loss = torch.nn.functional.cross_entropy(logits, targets) + 1e-2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    predicted = (held @ weight + bias).argmax(1).tolist()
    return float(np.mean([classes[p] == y for p, y in zip(predicted, test_y, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a SynthKitchen build")
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()

    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.encoders.featurize import ClipFeaturizer
    from stepdiff.encoders.registry import build_frame_encoder
    from stepdiff.eval.runner import ClipResolver

    clips = [json.loads(line) for line in (args.data / "clips.jsonl").read_text().splitlines()]
    resolve = ClipResolver(args.data / "videos")
    featurizer = ClipFeaturizer(build_frame_encoder(args.encoder), args.frames, FeatureCache())
    pooled = np.concatenate(
        [
            featurizer([resolve(c["clip_id"]) for c in clips[start : start + 16]])
            .mean(dim=(1, 2))
            .numpy()
            for start in range(0, len(clips), 16)
        ]
    )  # (N, D)
    train = np.array([c["split"] == "train" for c in clips])
    print(f"{train.sum()} training clips, {(~train).sum()} test + held-out clips\n")
    print("| attribute | classes | probe accuracy | majority class |\n|---|---|---|---|")
    for name in ATTRIBUTES:
        labels = np.array([str(c[name]) for c in clips])
        accuracy = probe_accuracy(
            pooled[train], list(labels[train]), pooled[~train], list(labels[~train])
        )
        majority = max(np.mean(labels[~train] == value) for value in set(labels[train]))
        print(f"| {name} | {len(set(labels))} | {accuracy:.2f} | {majority:.2f} |")


if __name__ == "__main__":
    main()
