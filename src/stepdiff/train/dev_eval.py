"""Periodic DiffMCQ accuracy and DiffRank tau on a dev split, during training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stepdiff.data.categories import Task
from stepdiff.data.formats import ScorePrediction, read_ground_truth
from stepdiff.eval.runner import ClipResolver, predict
from stepdiff.eval.score import MAIN_METRIC, score_records
from stepdiff.eval.scorers import StepDiffScorer
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.train.config import DevConfig
from stepdiff.video.clip import ClipRef


class DevEvaluator:
    """Reads the dev files once; ``__call__`` scores the model on them (no intervals)."""

    def __init__(self, dev: DevConfig, default_video_dir: str) -> None:
        self.resolve = ClipResolver(Path(dev.video_dir or default_video_dir))
        self.batch_size = dev.batch_size
        self.items: dict[Task, list[Any]] = {}
        for task, path in ((Task.DIFFMCQ, dev.diffmcq), (Task.DIFFRANK, dev.diffrank)):
            if path:
                items = read_ground_truth(path, task)
                self.items[task] = items[: dev.max_items] if dev.max_items else items
        # Fail now, not at the first evaluation, when a dev clip is missing.
        self.clips()

    def __bool__(self) -> bool:
        return bool(self.items)

    def clips(self) -> list[ClipRef]:
        """Every clip the dev items show, resolved to its video (sorted by id)."""
        ids: set[str] = set()
        for task, items in self.items.items():
            for item in items:
                groups = item.options if task is Task.DIFFMCQ else [(item.reference, *item.targets)]
                ids.update(clip for group in groups for clip in group)
        return [self.resolve(clip_id) for clip_id in sorted(ids)]

    @torch.no_grad()
    def __call__(self, model: StepDiffModel) -> dict[str, float]:
        was_training = model.training
        model.eval()
        scorer = StepDiffScorer(model)
        results = {}
        for task, items in self.items.items():
            predictions = []
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                records = predict(task, chunk, scorer, self.resolve)
                predictions += [ScorePrediction.from_json(r) for r in records]
            report = score_records(task, items, predictions, bootstrap=0)
            name = "mcq_accuracy" if task is Task.DIFFMCQ else "rank_tau"
            results[name] = float(report.metric(MAIN_METRIC[task]).value)
        model.train(was_training)
        return results
