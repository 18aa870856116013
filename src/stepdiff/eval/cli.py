"""``stepdiff score``: score a prediction file on a StepDiff benchmark file.

Only light imports at module level: this module is imported whenever ``stepdiff`` starts,
and scoring (numpy, pycocoevalcap, matplotlib, PyAV through clip-id checks) is loaded
when the command actually runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stepdiff.data.categories import Task


def score(
    task: Annotated[Task, typer.Option("--task", help="Benchmark task.", case_sensitive=False)],
    gt: Annotated[
        Path, typer.Option("--gt", help="Ground-truth JSONL in the official release format.")
    ],
    pred: Annotated[
        Path,
        typer.Option(
            "--pred",
            help='Predictions JSONL, one line per ground-truth line: {"generated_text": str} '
            '(diffcap) or {"scores": [4 numbers]} (diffmcq, diffrank).',
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.json, report.md and per_category.png."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON summary instead of markdown.")
    ] = False,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for 95% CIs (0: none).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
) -> None:
    """Score predictions with the official StepDiff rules, plus CIs and per-category results."""
    from stepdiff.cli import stderr, user_errors
    from stepdiff.eval.report import markdown_table, report_json, write_report
    from stepdiff.eval.score import score_files

    with user_errors():
        report = score_files(task, gt, pred, bootstrap=bootstrap, seed=seed)
        paths = write_report(report, out) if out is not None else None
    typer.echo(report_json(report) if as_json else markdown_table(report), nl=False)
    if paths is not None:
        written = ", ".join(str(path) for path in paths.values())
        stderr.print(f"Wrote {written}", markup=False, highlight=False, soft_wrap=True)
