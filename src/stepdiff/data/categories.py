"""The benchmark's vocabulary: its three tasks and its six difference categories.

Kept free of heavy imports: the CLI builds its ``--task`` choices from :class:`Task`
while ``stepdiff --help`` is being rendered.
"""

from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    """The three StepDiff evaluation tasks (names as in the official release)."""

    DIFFCAP = "diffcap"
    DIFFMCQ = "diffmcq"
    DIFFRANK = "diffrank"


# Exact strings of the official release. "Serving / Presentation" is rare (41 of 4,080
# DiffRank rows) but real, so it is a category like the others, not an error.
CATEGORIES: tuple[str, ...] = (
    "Ingredients",
    "Tools/Equipment",
    "Technique",
    "Actions",
    "Visuals",
    "Serving / Presentation",
)

# Number of options (DiffMCQ) and targets (DiffRank) per item in the official release.
NUM_CHOICES = 4

# DiffRank annotator scores: 0 (least similar to the reference) .. 5 (most similar).
MIN_RANK_SCORE = 0
MAX_RANK_SCORE = 5


def is_category(name: object) -> bool:
    """Whether ``name`` is one of the official category strings (exact match)."""
    return isinstance(name, str) and name in CATEGORIES


def category_order(names: set[str] | list[str] | tuple[str, ...]) -> list[str]:
    """``names`` in the official category order (what tables and plots list)."""
    present = set(names)
    return [name for name in CATEGORIES if name in present]
