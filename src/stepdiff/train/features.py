"""Frozen-encoder features of every training clip, computed once (and cached on disk).

The encoder never changes during training, so each clip is decoded and encoded once per
machine (the disk cache) and once per run (this in-memory bank), never per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from rich.progress import Progress

from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.eval.runner import ClipResolver


class FeatureBank:
    """clip id -> features (T, P, D), all computed up front."""

    def __init__(self, features: dict[str, torch.Tensor]) -> None:
        self.features = features
        self._means: dict[str, torch.Tensor] = {}  # clip id -> (1, 1, D), on demand

    @classmethod
    def build(
        cls,
        featurizer: ClipFeaturizer,
        clip_ids: Iterable[str],
        video_dir: str | Path,
        *,
        show_progress: bool = True,
        batch_size: int = 4,
    ) -> FeatureBank:
        resolve = ClipResolver(Path(video_dir))
        ids = sorted(set(clip_ids))
        # Resolve every id first, so a missing video fails before any encoding.
        clips = [resolve(clip_id) for clip_id in ids]
        features: dict[str, torch.Tensor] = {}
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task("encoding training clips", total=len(ids))
            for start in range(0, len(ids), batch_size):
                chunk = clips[start : start + batch_size]
                encoded = featurizer(chunk).cpu()  # (b, T, P, D)
                for clip_id, tensor in zip(ids[start : start + batch_size], encoded, strict=True):
                    features[clip_id] = tensor.clone()
                progress.advance(task, len(chunk))
        return cls(features)

    def videos(self, clips: Sequence[Sequence[str]]) -> torch.Tensor:
        """Rows of clip ids (same count per row) -> (B, V, T, P, D)."""
        return torch.stack([torch.stack([self.features[c] for c in row]) for row in clips])

    def mean_videos(self, clips: Sequence[Sequence[str]]) -> torch.Tensor:
        """Rows of clip ids -> each clip's mean token (B, V, 1, 1, D): all that a head
        reading only whole-clip means needs, without copying every token each step."""
        for clip in {c for row in clips for c in row} - set(self._means):
            self._means[clip] = self.features[clip].float().mean(dim=(0, 1), keepdim=True)
        return torch.stack([torch.stack([self._means[c] for c in row]) for row in clips])
