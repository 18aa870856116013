"""Fit a severity calibration on a benchmark split's DiffRank rows (``stepdiff calibrate``).

The rows are read and scored by the evaluation runner's own code (``read_diffrank``,
``ClipResolver``, ``predict`` with the StepDiff scorer), so p_same here is exactly the
score ``stepdiff eval --task diffrank`` would predict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from stepdiff.assistant.calibration import SeverityCalibration
from stepdiff.assistant.errors import CalibrationError
from stepdiff.assistant.fingerprint import projector_fingerprint
from stepdiff.data.categories import Task
from stepdiff.data.formats import DiffRankItem, read_diffrank, read_predictions
from stepdiff.eval.runner import ClipResolver, predict
from stepdiff.eval.scorers import StepDiffScorer
from stepdiff.model.stepdiff import StepDiffModel

SPLITS = ("heldout", "test")


def diffrank_files(data_dir: str | Path, split: str) -> tuple[Path, Path]:
    """``(diffrank_<split>.jsonl, videos/)`` of a benchmark folder, checked to exist."""
    if split not in SPLITS:
        raise CalibrationError(f"unknown split {split!r} (valid: {', '.join(SPLITS)})")
    data_dir = Path(data_dir)
    rows, videos = data_dir / f"diffrank_{split}.jsonl", data_dir / "videos"
    for path, what in ((rows, "DiffRank file"), (videos, "video folder")):
        if not path.exists():
            raise CalibrationError(f"{path}: {what} not found (is {data_dir} a benchmark folder?)")
    return rows, videos


def diffrank_p_same(
    model: StepDiffModel,
    items: list[DiffRankItem],
    video_dir: Path,
    *,
    batch_size: int = 8,
    show_progress: bool = True,
) -> list[list[float]]:
    """P(YES) to each row's same-category question for its 4 targets -> one list per row."""
    scorer = StepDiffScorer(model)
    resolve = ClipResolver(video_dir)
    scores: list[list[float]] = []
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    # On stderr: stdout stays for the command's own output.
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        bar = progress.add_task("p_same on DiffRank rows", total=len(items))
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            records = predict(Task.DIFFRANK, chunk, scorer, resolve)
            scores += [record["scores"] for record in records]
            progress.advance(bar, len(chunk))
    return scores


def calibrate_on_split(
    model: StepDiffModel,
    data_dir: str | Path,
    split: str = "heldout",
    *,
    model_name: str = "",
    batch_size: int = 8,
    show_progress: bool = True,
    eval_run: Path | None = None,
    eval_settings: Mapping[str, Any] | None = None,
) -> SeverityCalibration:
    """Fit p_same -> severity on ``data_dir``'s DiffRank rows of ``split``.

    Every (reference, target) of every row is one point (p_same, human score 0..5); the
    rows' own category decides the question, so all categories share one map.
    ``eval_run``: a ``stepdiff eval`` folder of this model on these rows, whose
    predictions are the p_same values (see :func:`eval_run_p_same`), not computed again.
    """
    rows_path, video_dir = diffrank_files(data_dir, split)
    items = read_diffrank(rows_path)
    if not items:
        raise CalibrationError(f"{rows_path}: no DiffRank rows to calibrate on")
    if eval_run is not None:
        p_same = eval_run_p_same(eval_run, rows_path, len(items), eval_settings or {})
    else:
        p_same = diffrank_p_same(
            model, items, video_dir, batch_size=batch_size, show_progress=show_progress
        )
    return SeverityCalibration.fit(
        [p for row in p_same for p in row],
        [score for item in items for score in item.scores],
        model=model_name,
        fingerprint=projector_fingerprint(model),
        split=split,
        rows=len(items),
    )


def eval_run_p_same(
    run_dir: Path, rows_path: Path, count: int, settings: Mapping[str, Any]
) -> list[list[float]]:
    """The p_same of a finished ``stepdiff eval --task diffrank`` folder, checked to be
    this model's on these rows: its ``run.json`` must name ``rows_path`` (same contents)
    and ``settings`` (the StepDiff scorer's, as ``scorer_settings`` gives them for the
    model options at hand), and it must hold a prediction for every row."""
    from stepdiff.eval.runner import RUN_INFO, located

    info_path = run_dir / RUN_INFO
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CalibrationError(f"{info_path}: not a `stepdiff eval` run ({error})") from None
    expected = json.loads(
        json.dumps({"task": Task.DIFFRANK.value, "gt": located(rows_path), **settings})
    )
    differing = sorted(key for key in expected if info.get(key) != expected[key])
    if differing:
        raise CalibrationError(
            f"{info_path}: that run differs from this calibration in {', '.join(differing)} "
            "(run `stepdiff eval --task diffrank --scorer stepdiff` on these rows with the "
            "same model options)"
        )
    predictions = read_predictions(run_dir / "predictions.jsonl", Task.DIFFRANK, count)
    return [list(prediction.scores) for prediction in predictions]
