"""Benchmark data: the tasks and categories, and the official release formats.

The record types and readers live in :mod:`stepdiff.data.formats`; they are loaded on
first use because validating clip ids imports the video package (PyAV), which the CLI
should not pay for just to render ``--help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stepdiff.data.categories import CATEGORIES, NUM_CHOICES, Task, category_order, is_category

if TYPE_CHECKING:
    from stepdiff.data.formats import (
        CaptionPrediction,
        DiffCapItem,
        DiffMCQItem,
        DiffRankItem,
        FieldError,
        GroundTruthItem,
        Prediction,
        ScorePrediction,
        atomic_writer,
        read_diffcap,
        read_diffmcq,
        read_diffrank,
        read_ground_truth,
        read_jsonl,
        read_predictions,
        write_atomic,
        write_jsonl,
    )

__all__ = [
    "CATEGORIES",
    "NUM_CHOICES",
    "CaptionPrediction",
    "DiffCapItem",
    "DiffMCQItem",
    "DiffRankItem",
    "FieldError",
    "GroundTruthItem",
    "Prediction",
    "ScorePrediction",
    "Task",
    "atomic_writer",
    "category_order",
    "is_category",
    "read_diffcap",
    "read_diffmcq",
    "read_diffrank",
    "read_ground_truth",
    "read_jsonl",
    "read_predictions",
    "write_atomic",
    "write_jsonl",
]

# Names served by stepdiff.data.formats, imported on first access.
_EAGER = {"CATEGORIES", "NUM_CHOICES", "Task", "category_order", "is_category"}
_LAZY = set(__all__) - _EAGER


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("stepdiff.data.formats"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
