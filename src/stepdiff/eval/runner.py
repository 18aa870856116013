"""Run any PairScorer over an official benchmark file: predictions, then scores.

Predictions are appended to ``predictions.jsonl.partial`` batch by batch (flushed and
fsynced), so an interrupted run resumes after the last complete batch; the finished file
is renamed to ``predictions.jsonl`` in one step, so it is never half written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from stepdiff.baselines.base import PairScorer
from stepdiff.data.categories import Task
from stepdiff.data.formats import read_ground_truth, write_atomic
from stepdiff.errors import StepDiffError
from stepdiff.eval.questions import difference_question, same_question
from stepdiff.video.clip import ClipRef, resolve_clip

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "run.json"


class ClipResolver:
    """Clip id -> ClipRef in a video folder, each id resolved once."""

    def __init__(self, video_dir: Path) -> None:
        self.video_dir = Path(video_dir)
        self._known: dict[str, ClipRef] = {}

    def __call__(self, clip_id: str) -> ClipRef:
        if clip_id not in self._known:
            self._known[clip_id] = resolve_clip(clip_id, self.video_dir)
        return self._known[clip_id]


def predict(task: Task, items: Sequence[Any], scorer: PairScorer, clip: ClipResolver) -> list[dict]:
    """Prediction records (official format) for a batch of ground-truth items."""
    if task is Task.DIFFCAP:
        texts = scorer.generate(
            [clip(item.reference) for item in items],
            [clip(item.candidate) for item in items],
            [difference_question(item.category) for item in items],
        )
        return [{"generated_text": text} for text in texts]
    if task is Task.DIFFMCQ:
        # All 4 options of every item in one call: the same question and caption, scored
        # against each (reference, candidate) pair.
        options = [(item, pair) for item in items for pair in item.options]
        flat = scorer.loglik(
            [clip(pair[0]) for _, pair in options],
            [clip(pair[1]) for _, pair in options],
            [difference_question(item.category) for item, _ in options],
            [item.difference for item, _ in options],
        )
    else:
        targets = [(item, target) for item in items for target in item.targets]
        flat = scorer.p_yes(
            [clip(item.reference) for item, _ in targets],
            [clip(target) for _, target in targets],
            [same_question(item.category) for item, _ in targets],
        )
    return [{"scores": [float(s) for s in flat[i * 4 : i * 4 + 4]]} for i in range(len(items))]


def _complete_lines(path: Path) -> int:
    """Number of complete lines in ``path``; a torn last line (crash mid-write) is cut."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return data[:keep].count(b"\n")


def _check_run_info(out_dir: Path, info: dict[str, str]) -> None:
    path = out_dir / RUN_INFO
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != info:
            raise StepDiffError(
                f"{path}: this folder holds a run of {previous.get('scorer')} on "
                f"{previous.get('gt')}; use another --out for {info['scorer']} on {info['gt']}"
            )
    else:
        write_atomic(path, json.dumps(info, indent=2))


def run_predictions(
    task: Task | str,
    gt_path: str | Path,
    video_dir: str | Path,
    scorer: PairScorer,
    out_dir: str | Path,
    *,
    batch_size: int = 8,
    show_progress: bool = True,
) -> Path:
    """Write ``out_dir/predictions.jsonl`` for every ground-truth line; resumes a partial run."""
    task = Task(task)
    items = read_ground_truth(gt_path, task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run_info(out_dir, {"task": task.value, "gt": str(gt_path), "scorer": scorer.name})
    final = out_dir / PREDICTIONS
    if final.is_file():
        return final
    partial = out_dir / f"{PREDICTIONS}.partial"
    done = _complete_lines(partial)
    clip = ClipResolver(Path(video_dir))
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress, partial.open("a") as handle:
        bar = progress.add_task(f"{scorer.name} on {task.value}", total=len(items), completed=done)
        for start in range(done, len(items), batch_size):
            batch = items[start : start + batch_size]
            records = predict(task, batch, scorer, clip)
            handle.write("".join(json.dumps(record) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())
            progress.advance(bar, len(batch))
    os.replace(partial, final)
    return final
