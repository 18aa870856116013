"""DiffRank and DiffMCQ scoring with the shipped model: all options of a batch of
instances in one call against option by option, side by side in one run.

    .venv/bin/python benchmarks/bench_scoring.py [--instances 8] [--repeats 5]

The shipped model (EfficientNet-Lite0 features, its projector, SmolLM2-135M-Instruct)
scores random features of the encoder's output shape, (8, 49, 1280) per clip: speed
depends on shapes, not values. The instances are built as the benchmark files are:

- DiffRank: one reference and four candidates per instance, one yes/no question about a
  category; the score is P(YES).
- DiffMCQ: one caption per instance against four (reference, candidate) pairs, each
  with its own reference; the score is the caption's log-likelihood.

Three ways, interleaved (alternating which goes first), median of ``--repeats``:

- ``batched``: every option of every instance in one call, as the evaluation runner
  sends them (DiffRank's candidates of one reference run the prompt up to the candidate
  video once);
- ``batched, no sharing``: the same call with ``share_prefix=False`` (one padded forward
  of every full prompt);
- ``one by one``: one call per option.

Prints seconds, speed-ups over one by one, and the largest score difference from one by
one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from stepdiff.data.questions import difference_question, same_question
from stepdiff.model.build import load_model_from
from stepdiff.model.stepdiff import StepDiffModel

CATEGORIES = ("Tools/Equipment", "Ingredients", "Method", "Quantity")
CAPTION = "The person adds carrots instead of peppers"
OPTIONS = 4


def diffrank_rows(
    instances: int, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """References (each repeated for its 4 candidates), candidates and questions."""
    references = torch.randn(instances, *shape).repeat_interleave(OPTIONS, dim=0)
    candidates = torch.randn(instances * OPTIONS, *shape)
    questions = [same_question(CATEGORIES[i % len(CATEGORIES)]) for i in range(instances)]
    return references, candidates, [q for q in questions for _ in range(OPTIONS)]


def diffmcq_rows(
    instances: int, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Four pairs per instance, every one with its own reference; one caption each."""
    references = torch.randn(instances * OPTIONS, *shape)
    candidates = torch.randn(instances * OPTIONS, *shape)
    questions = [difference_question(CATEGORIES[i % len(CATEGORIES)]) for i in range(instances)]
    rows = [q for q in questions for _ in range(OPTIONS)]
    return references, candidates, rows, [CAPTION] * len(rows)


def compare(
    name: str,
    ways: dict[str, Callable[[], torch.Tensor]],
    repeats: int,
) -> None:
    """Time ``ways`` interleaved and print them against ``one by one``."""
    scores = {way: run() for way, run in ways.items()}  # untimed: warms up, and checks
    timings: dict[str, list[float]] = {way: [] for way in ways}
    order = list(ways)
    for _ in range(repeats):
        for way in order:
            started = time.perf_counter()
            ways[way]()
            timings[way].append(time.perf_counter() - started)
        order.reverse()
    single = statistics.median(timings["one by one"])
    print(f"\n{name}")
    print(f"  {'way':<22} {'median s':>9} {'vs one by one':>14} {'max |score diff|':>17}")
    for way, values in timings.items():
        seconds = statistics.median(values)
        difference = float((scores[way] - scores["one by one"]).abs().max())
        print(f"  {way:<22} {seconds:>9.2f} {single / seconds:>13.2f}x {difference:>17.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=8, help="instances per call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model: StepDiffModel = load_model_from(None, None, [], feature_cache=None)
    shape = (*model.encoder.tokens_shape(model.config.num_frames), model.encoder.dim)
    print(
        f"{args.instances} instances x {OPTIONS} options, {torch.get_num_threads()} torch "
        f"threads, median of {args.repeats}"
    )

    refs, cands, questions = diffrank_rows(args.instances, shape)
    compare(
        "DiffRank: P(YES), one reference and four candidates per instance",
        {
            "batched": lambda: model.p_yes(refs, cands, questions),
            "batched, no sharing": lambda: model.p_yes(refs, cands, questions, share_prefix=False),
            "one by one": lambda: torch.cat(
                [
                    model.p_yes(refs[i : i + 1], cands[i : i + 1], questions[i : i + 1])
                    for i in range(len(questions))
                ]
            ),
        },
        args.repeats,
    )

    refs, cands, questions, captions = diffmcq_rows(args.instances, shape)
    compare(
        "DiffMCQ: caption log-likelihood, four pairs per instance",
        {
            "batched": lambda: model.loglik(refs, cands, questions, captions),
            "batched, no sharing": lambda: model.loglik(
                refs, cands, questions, captions, share_prefix=False
            ),
            "one by one": lambda: torch.cat(
                [
                    model.loglik(
                        refs[i : i + 1], cands[i : i + 1], questions[i : i + 1], captions[i : i + 1]
                    )
                    for i in range(len(questions))
                ]
            ),
        },
        args.repeats,
    )


if __name__ == "__main__":
    main()
