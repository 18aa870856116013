"""Where in time two clips differ most, from the frozen encoder's per-frame features.

The frame features are those of the frozen video encoder (the projector and LLM play no
part), averaged over each frame's spatial tokens. Two clips of one step may run at
different speeds, so their frames are first aligned monotonically by dynamic time
warping (DTW) on cosine distances; the aligned pairs that stay furthest apart are the
moments. Nothing here is specific to a difference category: every category of a report
gets the same moments.

Shapes: T time steps, P tokens per step, D encoder width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AlignedPair:
    """One aligned (reference step, candidate step) pair and its cosine distance."""

    reference_step: int
    candidate_step: int
    distance: float


def frame_distances(reference: torch.Tensor, candidate: torch.Tensor) -> np.ndarray:
    """Cosine distance between every reference and candidate time step.

    reference (Tr, P, D), candidate (Tc, P, D) -> (Tr, Tc) in [0, 2], 0 = same direction.
    """
    ref = F.normalize(reference.detach().float().mean(dim=1), dim=-1)  # (Tr, D)
    cand = F.normalize(candidate.detach().float().mean(dim=1), dim=-1)  # (Tc, D)
    similarity = ref @ cand.T  # (Tr, Tc)
    return (1.0 - similarity).clamp(min=0.0).cpu().numpy().astype(np.float64)


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """The monotone alignment of minimal total cost from (0, 0) to (Tr-1, Tc-1).

    cost (Tr, Tc). Steps: both clips advance, or one of them does. On equal totals the
    diagonal step wins, so clips of equal speed align frame by frame.
    """
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)  # total[i+1, j+1]: best path to (i, j)
    total[0, 0] = 0.0
    for i in range(rows):
        for j in range(cols):
            total[i + 1, j + 1] = cost[i, j] + min(total[i, j], total[i, j + 1], total[i + 1, j])
    path = [(rows - 1, cols - 1)]
    i, j = rows - 1, cols - 1
    while (i, j) != (0, 0):
        # Predecessors in order of preference: diagonal, then up, then left.
        options = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min(
            (p for p in options if p[0] >= 0 and p[1] >= 0),
            key=lambda p: total[p[0] + 1, p[1] + 1],
        )
        path.append((i, j))
    return path[::-1]


def most_different(
    reference: torch.Tensor, candidate: torch.Tensor, count: int = 3
) -> list[AlignedPair]:
    """The ``count`` aligned pairs with the largest distance, largest first.

    reference (Tr, P, D), candidate (Tc, P, D). A chosen pair's reference and candidate
    steps are not reused by later picks: neighbouring pairs of one long difference would
    otherwise fill every slot with the same moment.
    """
    cost = frame_distances(reference, candidate)  # (Tr, Tc)
    path = dtw_path(cost)
    # Stable sort: among equal distances the earlier pair comes first.
    ranked = sorted(path, key=lambda p: -cost[p])
    chosen: list[AlignedPair] = []
    used_ref: set[int] = set()
    used_cand: set[int] = set()
    for i, j in ranked:
        if len(chosen) >= count:
            break
        if i in used_ref or j in used_cand:
            continue
        chosen.append(AlignedPair(i, j, float(cost[i, j])))
        used_ref.add(i)
        used_cand.add(j)
    return chosen


def step_to_frame(step: int, num_steps: int, num_frames: int) -> int:
    """The sampled frame at the middle of time step ``step`` (video encoders may fold
    several frames into one step; image encoders have one frame per step)."""
    return min(num_frames - 1, int((step + 0.5) * num_frames / num_steps))
