"""``stepdiff score``: score a prediction file on a StepDiff benchmark file.

Only light imports at module level: this module is imported whenever ``stepdiff`` starts,
and scoring (numpy, pycocoevalcap, matplotlib, PyAV through clip-id checks) is loaded
when the command actually runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stepdiff.console import stderr, user_errors
from stepdiff.data.categories import Task
from stepdiff.model_options import SHIPPED_MODEL, ModelOptions
from stepdiff.options import expand_options


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
        int, typer.Option(help="Bootstrap resamples for 95% CIs (0: none; at most 100000).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="Another system's predictions on the same file (repeatable): report every "
            "metric's difference from it with a paired bootstrap interval.",
        ),
    ] = None,
) -> None:
    """Score predictions with the official StepDiff rules, plus CIs and per-category results."""
    from stepdiff.eval.report import markdown_table, report_json, write_report
    from stepdiff.eval.score import score_files

    with user_errors():
        report = score_files(task, gt, pred, bootstrap=bootstrap, seed=seed, against=against or ())
        paths = write_report(report, out) if out is not None else None
    typer.echo(report_json(report) if as_json else markdown_table(report), nl=False)
    if paths is not None:
        written = ", ".join(str(path) for path in paths.values())
        stderr.print(f"Wrote {written}", markup=False, highlight=False, soft_wrap=True)


@expand_options(model=("config", "checkpoint", "overrides", "cache", "llamacpp"))
def evaluate(
    task: Annotated[Task, typer.Option("--task", help="Benchmark task.", case_sensitive=False)],
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth JSONL (official format).")],
    videos: Annotated[
        Path, typer.Option("--videos", help="Folder holding <video_uid>.<ext> for the clip ids.")
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for predictions.jsonl and the report (resumable).")
    ],
    scorer: Annotated[
        str,
        typer.Option(
            "--scorer",
            help="stepdiff, stepdiff-likelihood, single-video, blind-llm, socratic, "
            "socratic-oracle[:fields], random, feature-distance, "
            "vlembed:<CLIP/SigLIP id or folder>, vlembed-aligned:<head folder>.",
        ),
    ] = "stepdiff",
    model: ModelOptions = SHIPPED_MODEL,
    clips: Annotated[
        Path | None, typer.Option(help="SynthKitchen clips.jsonl (for socratic-oracle).")
    ] = None,
    caption_pool: Annotated[
        Path | None,
        typer.Option(help="DiffCap JSONL whose captions VLEmbed retrieves answers from."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Benchmark items per batch.")] = 8,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for CIs (0: none; at most 100000).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of random scorers and the bootstrap.")] = 0,
) -> None:
    """Predict with a scorer on a benchmark file, then score the predictions."""
    from stepdiff.data.formats import read_diffcap
    from stepdiff.eval.registry import ScorerOptions, build_scorer
    from stepdiff.eval.report import markdown_table, write_report
    from stepdiff.eval.runner import claim_run, scorer_settings
    from stepdiff.eval.score import check_resampling, score_files

    with user_errors():
        check_resampling(bootstrap, seed)  # before the slow predictions, not after
        pool = [t for item in read_diffcap(caption_pool) for t in item.text] if caption_pool else []
        options = ScorerOptions(
            model=model,
            seed=seed,
            clips=clips,
            caption_pool=pool,
        )
        # The folder is claimed before the scorer loads: a refused run loads no model.
        with claim_run(task, gt, videos, out, scorer_settings(scorer, options)) as run:
            with stderr.status(f"Loading {scorer}..."):
                built = build_scorer(scorer, options)
            predictions = run.predict(built, batch_size=batch_size)
            report = score_files(task, gt, predictions, bootstrap=bootstrap, seed=seed)
            write_report(report, out)
    typer.echo(markdown_table(report), nl=False)
