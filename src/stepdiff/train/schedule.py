"""Learning-rate schedules: linear warm-up, then cosine, linear or constant decay."""

from __future__ import annotations

import math

from stepdiff.train.config import OptimConfig


def lr_factor(step: int, max_steps: int, optim: OptimConfig) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based: the factor used by
    the step that follows ``step`` completed steps)."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    span = max(1, max_steps - optim.warmup_steps)
    progress = min(1.0, (step - optim.warmup_steps) / span)
    floor = optim.min_lr_ratio
    if optim.schedule == "linear":
        return floor + (1.0 - floor) * (1.0 - progress)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
