"""Training samples per second: the paper's answer loss against description alignment.

    python benchmarks/bench_describe.py [--llm qwen2.5-coder-0.5b-instruct] [--repeats 5]
        [--threads 1]

One model (the words head, width 256, 53 latents: the projector of
recipes/synthkitchen-qwen-describe.yaml) and one AdamW step each way, timed alternately
in one process so that their ratio holds on a noisy machine:

- **answer loss**: B=4 pair-QA rows (two clips' frozen features each, a DiffCap question
  and a one-sentence answer) forward and backward through the frozen LLM, as the paper
  trains;
- **description slots**: B=32 clips through the projector alone, a cross-entropy per
  slot (``describe_weight``), no LLM pass.

Clip features are random tensors of the encoder's shape (8 x 49 x 1,280): decoding and
encoding are cached before training in both cases, so they are not part of a step.
Prints the median samples/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stepdiff.config import load_config
from stepdiff.data.questions import difference_question
from stepdiff.model import build_model

PAIR_ROWS, DESCRIBED_CLIPS, SLOTS = 4, 32, 53
ANSWER = "The person uses a whisk instead of a wooden spoon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(
        load_config(
            "cpu-default",
            [
                f"llm={args.llm}",
                "projector.output_head=words",
                "projector.width=256",
                f"projector.num_latents={SLOTS}",
            ],
        )
    )
    words = model.projector_module.components["words"]
    vocabulary = torch.randperm(len(model.tokenizer))[:500].sort().values
    words.set_vocabulary(vocabulary.tolist())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    shape = (8, 49, model.featurizer.encoder.dim)  # (T, P, D)
    question = difference_question("Tools/Equipment")
    batch = model.collate(model._samples([question] * PAIR_ROWS, [ANSWER] * PAIR_ROWS))
    pairs = torch.randn(PAIR_ROWS, 2, *shape)
    clips = torch.randn(DESCRIBED_CLIPS, 1, *shape)
    slot_ids = vocabulary[torch.randint(len(vocabulary), (DESCRIBED_CLIPS, SLOTS))]

    def answer_step() -> None:
        model(batch, pairs, paired=True).backward()

    def describe_step() -> None:
        words.loss(model.component_scores("words", clips), slot_ids).backward()

    steps = {
        "answer loss": (answer_step, PAIR_ROWS),
        "description slots": (describe_step, DESCRIBED_CLIPS),
    }
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, (step, samples) in steps.items():
            start = time.perf_counter()
            step()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if repeat:
                rates[name].append(samples / (time.perf_counter() - start))
    answer, describe = (statistics.median(rates[name]) for name in steps)
    print(f"LLM {args.llm}, {args.threads} thread(s), median of {args.repeats} steps each")
    print(f"answer loss (B={PAIR_ROWS} pair-QA rows):  {answer:8.2f} samples/s")
    print(f"description slots (B={DESCRIBED_CLIPS} clips):  {describe:8.2f} samples/s")
    print(f"ratio: {describe / answer:.0f}x")


if __name__ == "__main__":
    main()
