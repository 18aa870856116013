"""Can the frozen LLM name what one video shows? Attribute questions scored as a
multiple choice through the trained projector.

For each clip of a split and each attribute question of the single-video training data
("Which tool does the person use?"), the clip's true answer and k-1 other answers of that
question in the dataset are scored by their log-likelihood given the clip; the prediction
is the best one. The control scores the same options given another clip of the split: a
model that has learnt only the answers' wording does equally well with either video
(about 1/k), one that reads the video does better with the clip's own.

    .venv/bin/python docs/scripts/attribute_readout.py --model runs/train-synthkitchen/model \
        --data runs/synthkitchen --split heldout
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a saved StepDiff model")
    parser.add_argument("--data", type=Path, required=True, help="a SynthKitchen build")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--clips", type=int, default=40, help="at most this many clips")
    parser.add_argument("--options", type=int, default=8, help="k answers per question")
    args = parser.parse_args()

    import torch

    from stepdiff.datagen.interleaved import attribute_questions
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.eval.runner import ClipResolver
    from stepdiff.model.build import load_model
    from stepdiff.synthkitchen.world import ClipSpec

    rows = [json.loads(line) for line in (args.data / "clips.jsonl").read_text().splitlines()]
    specs = [ClipSpec.from_dict(row) for row in rows]
    questions: dict[str, list[str]] = {}  # question -> one true answer per clip (all clips)
    for spec in specs:
        for question, answer in attribute_questions(spec):
            questions.setdefault(question, []).append(answer)
    chosen = [i for i, row in enumerate(rows) if row.get("split") == args.split][: args.clips]
    resolve = ClipResolver(args.data / "videos")
    model = load_model(args.model, feature_cache=FeatureCache())
    model.eval()
    features = model.clip_features([resolve(rows[i]["clip_id"]) for i in chosen])  # (N, T, P, D)
    other = list(range(len(chosen)))
    random.Random(1).shuffle(other)  # the control's video for each clip
    print(f"{args.model}: {len(chosen)} {args.split} clips, {args.options} options each")
    print("| question | own video | another clip's video |\n|---|---|---|")
    totals = [0, 0]
    with torch.no_grad():
        for question, answers in questions.items():
            distinct = sorted(set(answers))
            correct = [0, 0]
            for clip, row in enumerate(chosen):
                truth = answers[row]
                rng = random.Random(f"{question}:{clip}")
                others = [a for a in distinct if a != truth]
                wrong = rng.sample(others, min(args.options - 1, len(others)))
                options = sorted([truth, *wrong])
                for slot, source in enumerate((clip, other[clip])):
                    videos = features[source : source + 1].expand(len(options), -1, -1, -1)
                    scores = model.single_video_loglik(videos, [question] * len(options), options)
                    correct[slot] += options[int(scores.argmax())] == truth
            totals = [t + c for t, c in zip(totals, correct, strict=True)]
            own, control = (c / len(chosen) for c in correct)
            print(f"| {question} | {own:.2f} | {control:.2f} |")
    count = len(chosen) * len(questions)
    print(f"| all | {totals[0] / count:.3f} | {totals[1] / count:.3f} |")


if __name__ == "__main__":
    main()
