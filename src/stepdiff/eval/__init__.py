"""Evaluation on the StepDiff benchmarks: official-parity metrics, scoring, reports.

- :mod:`stepdiff.eval.metrics`: the official computations and extras (pure functions).
- :mod:`stepdiff.eval.score`: ``score_files`` / ``score_records`` -> ``ScoreReport``.
- :mod:`stepdiff.eval.report`: markdown table, JSON summary, per-category chart.
- :mod:`stepdiff.eval.scorers`: the ``PairScorer`` interface and the StepDiff scorers.
- :mod:`stepdiff.eval.registry`: every scorer (StepDiff and the baselines) by name.
- :mod:`stepdiff.eval.runner`: predictions of any scorer on a benchmark file, resumable.

Submodules are loaded on first use so that importing the CLI stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepdiff.eval.report import markdown_table, report_json, write_report
    from stepdiff.eval.score import ScoreReport, score_files, score_records

_LAZY = {
    "ScoreReport": "stepdiff.eval.score",
    "score_files": "stepdiff.eval.score",
    "score_records": "stepdiff.eval.score",
    "markdown_table": "stepdiff.eval.report",
    "report_json": "stepdiff.eval.report",
    "write_report": "stepdiff.eval.report",
}

__all__ = [
    "ScoreReport",
    "markdown_table",
    "report_json",
    "score_files",
    "score_records",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
