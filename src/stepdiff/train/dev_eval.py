"""Periodic DiffMCQ accuracy, DiffRank tau and description slot accuracy on a dev split,
during training."""

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
from stepdiff.train.data import read_training_records
from stepdiff.train.describe import SlotLayout
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
        self.descriptions = (
            read_training_records("descriptions", [dev.descriptions], dev.max_items)
            if dev.descriptions
            else []
        )
        self.slot_layout: SlotLayout | None = None  # the trainer's, set when it has one
        # Fail now, not at the first evaluation, when a dev clip is missing.
        self.clips()

    def __bool__(self) -> bool:
        return bool(self.items or self.descriptions)

    def clips(self) -> list[ClipRef]:
        """Every clip the dev items show, resolved to its video (sorted by id)."""
        ids: set[str] = set()
        for task, items in self.items.items():
            for item in items:
                groups = item.options if task is Task.DIFFMCQ else [(item.reference, *item.targets)]
                ids.update(clip for group in groups for clip in group)
        ids.update(record.clips[0] for record in self.descriptions)
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
        if self.descriptions:
            results.update(self.slot_accuracy(model))
        model.train(was_training)
        return results

    def slot_accuracy(self, model: StepDiffModel) -> dict[str, float]:
        """The share of dev description slots (padding aside) whose most likely word is
        the slot's token, and of fields spelled right in every slot."""
        layout = self.slot_layout
        if layout is None:
            raise ValueError("dev.descriptions needs training descriptions (data.descriptions)")
        right = fields = total = 0
        field_hits = 0
        for start in range(0, len(self.descriptions), self.batch_size):
            chunk = self.descriptions[start : start + self.batch_size]
            videos = model.clip_features([self.resolve(r.clips[0]) for r in chunk])[:, None]
            predicted = model.component_scores("words", videos.to(model.device)).argmax(-1)
            words = model.projector_module.components["words"].word_ids
            predicted = words[predicted] if words.numel() else predicted  # (B, N) token ids
            targets = torch.tensor(
                [layout.targets(model.tokenizer, r.fields, truncate=True) for r in chunk],
                device=predicted.device,
            )
            informative = targets != layout.pad_id
            right += int(((predicted == targets) & informative).sum())
            total += int(informative.sum())
            spelled = layout.fields_spelled(predicted, targets)
            field_hits += int(spelled.sum())
            fields += spelled.numel()
        return {"slot_accuracy": right / max(total, 1), "field_accuracy": field_hits / fields}
