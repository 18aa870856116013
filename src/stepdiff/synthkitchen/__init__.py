"""SynthKitchen: a synthetic step-difference world in the spirit of CLEVR-Change.

Procedurally rendered cooking-step clips (stir-fry, whisk, flip, pour, chop) with full
ground truth in every StepDiff category, deterministic from a seed, and a builder that
writes DiffCap, DiffMCQ and DiffRank in the official release formats.

- :mod:`~stepdiff.synthkitchen.world`: vocabularies, :class:`ClipSpec`, sampling.
- :mod:`~stepdiff.synthkitchen.render`: ClipSpec -> mp4 + narration transcript (+ audio).
- :mod:`~stepdiff.synthkitchen.differences`: difference captions and severity scores.
- :mod:`~stepdiff.synthkitchen.builder`: splits, pairs and the benchmark files.
"""

from __future__ import annotations

from stepdiff.synthkitchen.builder import (
    SIZES,
    BuildSize,
    BuildSummary,
    build_benchmark,
    load_clips,
)
from stepdiff.synthkitchen.differences import (
    CategoryComparison,
    Difference,
    compare,
    compare_category,
    similarity_scores,
)
from stepdiff.synthkitchen.render import render_video
from stepdiff.synthkitchen.world import CATEGORIES, KEYSTEPS, ClipSpec, heldout_combinations

__all__ = [
    "CATEGORIES",
    "KEYSTEPS",
    "SIZES",
    "BuildSize",
    "BuildSummary",
    "CategoryComparison",
    "ClipSpec",
    "Difference",
    "build_benchmark",
    "compare",
    "compare_category",
    "heldout_combinations",
    "load_clips",
    "render_video",
    "similarity_scores",
]
