"""The chance baseline: random scores, and a random generic caption for DiffCap.

Every draw is a pure function of the seed and the row it answers (its clips, question
and answer), not of a generator's position: an interrupted and resumed evaluation, or
one run in other batches, gives the same predictions as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from stepdiff.video.clip import ClipRef

GENERIC_CAPTIONS = (
    "The person uses a different tool instead of the one in the reference.",
    "The person adds a different ingredient instead of the one in the reference.",
    "The person stirs faster instead of slowly.",
    "The food looks less cooked instead of golden.",
    "The person skips a step instead of doing every step.",
)
_UNIT = 2.0**-53  # a 53-bit integer times this is a uniform double in [0, 1)


def _clip_key(clip: ClipRef) -> str:
    # The official clip id when there is one, so that the draws do not change when the
    # videos move to another folder.
    return clip.clip_id or str(clip)


def _draw(seed: int, task: str, *row: str) -> int:
    """A 64-bit integer drawn from a hash of (seed, task, row)."""
    text = json.dumps([seed, task, *row])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class RandomScorer:
    """Uniform random scores (a pure function of ``seed`` and each row): MCQ accuracy
    0.25, rank tau 0."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _uniform(self, task: str, *row: str) -> float:
        return (_draw(self.seed, task, *row) >> 11) * _UNIT

    def generate(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[str]:
        rows = zip(refs, cands, questions, strict=True)
        return [
            GENERIC_CAPTIONS[
                _draw(self.seed, "generate", _clip_key(r), _clip_key(c), q) % len(GENERIC_CAPTIONS)
            ]
            for r, c, q in rows
        ]

    def loglik(
        self,
        refs: Sequence[ClipRef],
        cands: Sequence[ClipRef],
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> list[float]:
        rows = zip(refs, cands, questions, answers, strict=True)
        return [self._uniform("loglik", _clip_key(r), _clip_key(c), q, a) for r, c, q, a in rows]

    def p_yes(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[float]:
        rows = zip(refs, cands, questions, strict=True)
        return [self._uniform("p_yes", _clip_key(r), _clip_key(c), q) for r, c, q in rows]
