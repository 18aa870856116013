"""The chance baseline: random scores, and a random generic caption for DiffCap."""

from __future__ import annotations

import random

GENERIC_CAPTIONS = (
    "The person uses a different tool instead of the one in the reference.",
    "The person adds a different ingredient instead of the one in the reference.",
    "The person stirs faster instead of slowly.",
    "The food looks less cooked instead of golden.",
    "The person skips a step instead of doing every step.",
)


class RandomScorer:
    """Uniform random scores (deterministic from ``seed``): MCQ accuracy 0.25, rank tau 0."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def generate(self, refs, cands, questions) -> list[str]:
        return [self.rng.choice(GENERIC_CAPTIONS) for _ in questions]

    def loglik(self, refs, cands, questions, answers) -> list[float]:
        return [self.rng.random() for _ in questions]

    def p_yes(self, refs, cands, questions) -> list[float]:
        return [self.rng.random() for _ in questions]
