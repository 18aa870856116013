"""A training-free DiffRank baseline: how close the two clips' frozen frame features are.

Each clip becomes the mean of its encoder tokens over frames and patches; a candidate
closer to the reference (Euclidean distance) gets a higher "same?" score, whatever the
category asked about. No text is read, so it has no DiffCap or DiffMCQ answer: it tells
how much of DiffRank plain visual similarity solves, which a model that reads the videos
should beat.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.errors import ConfigError
from stepdiff.video.clip import ClipRef


class FeatureDistanceScorer:
    """DiffRank by closeness of mean frame features: score = 1 / (1 + distance)."""

    name = "feature-distance"

    def __init__(self, featurizer: ClipFeaturizer) -> None:
        self.featurizer = featurizer

    def p_yes(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[float]:
        features = self.featurizer([*refs, *cands])  # (2B, T, P, D)
        means = features.mean(dim=(1, 2))  # (2B, D)
        distance = (means[: len(refs)] - means[len(refs) :]).norm(dim=-1)  # (B,)
        return (1.0 / (1.0 + distance)).tolist()

    def generate(self, refs, cands, questions) -> list[str]:
        raise ConfigError("feature-distance reads no text: it scores DiffRank only")

    def loglik(self, refs, cands, questions, answers) -> list[float]:
        raise ConfigError("feature-distance reads no text: it scores DiffRank only")


def build_feature_distance(encoder: str, num_frames: int, cache: bool) -> FeatureDistanceScorer:
    """The scorer on a frozen encoder (the default model's unless named)."""
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.encoders.registry import build_frame_encoder

    featurizer = ClipFeaturizer(
        build_frame_encoder(encoder),
        num_frames=num_frames,
        cache=FeatureCache() if cache else None,
    )
    return FeatureDistanceScorer(featurizer)


__all__ = ["FeatureDistanceScorer", "build_feature_distance"]
