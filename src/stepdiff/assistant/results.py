"""What the assistant returns: plain frozen dataclasses with JSON-ready ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Moment:
    """One place in time where the two clips differ most (from frozen frame features)."""

    reference_time: float  # seconds in the reference video file
    candidate_time: float  # seconds in the candidate video file
    reference_frame: int  # index into the clip's sampled frames (0..T-1)
    candidate_frame: int
    distance: float  # cosine distance of the frames' features; larger = more different


@dataclass(frozen=True)
class CategoryDifference:
    """The assistant's view of one difference category."""

    category: str  # one of stepdiff.data.categories.CATEGORIES
    caption: str  # answer to data.questions.difference_question ("" without captions)
    p_same: float  # P(YES) to data.questions.same_question(category)
    severity: int  # 1 (no/minor difference) .. 5 (major), from p_same
    moments: list[Moment]  # the most different moments, best first


@dataclass(frozen=True)
class DifferenceReport:
    """How a candidate clip differs from a reference clip, per category."""

    reference: str  # str(ClipRef)
    candidate: str
    reference_times: list[float]  # presentation times (s) of the sampled frames
    candidate_times: list[float]
    calibrated: bool  # False: severities come from the uncalibrated equal-width bins
    categories: list[CategoryDifference]
    projector_trained: bool = True  # False: untrained projector, answers ignore the videos

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate's P(YES) to "same <category>?" against the reference."""

    candidate: str  # str(ClipRef)
    p_same: dict[str, float]  # category -> P(YES)
    overall: float  # mean of p_same over the categories


@dataclass(frozen=True)
class RankResult:
    """Candidates ordered by closeness to one reference, per category and overall."""

    reference: str
    per_category: dict[str, list[int]]  # category -> candidate indices, closest first
    overall: list[int]  # candidate indices, closest first
    candidates: list[RankedCandidate]  # in input order
    categories: list[str] = field(default_factory=list)  # the categories asked, in order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
