"""The interface one evaluation runner uses for StepDiff and every baseline.

A scorer answers questions about (reference, candidate) clip pairs in three ways, one per
benchmark task: free text (DiffCap), the log-likelihood of given answers (DiffMCQ), and
the probability of "YES" to a yes/no question (DiffRank). All calls are batched: row i
of each argument belongs to pair i.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.video.clip import ClipRef


class PairScorer(Protocol):
    name: str

    def generate(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[str]: ...

    def loglik(
        self,
        refs: Sequence[ClipRef],
        cands: Sequence[ClipRef],
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> list[float]: ...

    def p_yes(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[float]: ...


class StepDiffScorer:
    """The StepDiff model reading both videos; features come through its cache.

    DiffMCQ options are scored by the model's caption match head when it has one
    (``projector.caption_match``), else, as in the paper, by the caption's
    log-likelihood; ``likelihood=True`` keeps the paper's score for any model.
    """

    name = "stepdiff"

    def __init__(
        self, model: StepDiffModel, max_new_tokens: int = 32, *, likelihood: bool = False
    ) -> None:
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.match = model.matches_captions and not likelihood

    def _features(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode every distinct clip once -> reference and candidate tokens (B, T, P, D)."""
        features = self.model.clip_features([*refs, *cands])  # (2B, T, P, D)
        return features[: len(refs)], features[len(refs) :]

    def generate(self, refs, cands, questions) -> list[str]:
        ref, cand = self._features(refs, cands)
        return self.model.generate(ref, cand, questions, max_new_tokens=self.max_new_tokens)

    def loglik(self, refs, cands, questions, answers) -> list[float]:
        ref, cand = self._features(refs, cands)
        if self.match:
            return self.model.match_captions(ref, cand, answers).tolist()
        return self.model.loglik(ref, cand, questions, answers).tolist()

    def p_yes(self, refs, cands, questions) -> list[float]:
        ref, cand = self._features(refs, cands)
        return self.model.p_yes(ref, cand, questions).tolist()


class SingleVideoScorer(StepDiffScorer):
    """The same model shown only the candidate (in both video slots): nothing about the
    reference reaches the LLM, so any skill it shows comes from one video alone."""

    name = "single-video"

    def _features(self, refs, cands):
        _, cand = super()._features(cands, cands)
        return cand, cand
