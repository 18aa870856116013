"""RankNet's pairwise loss over the options of ranking items (DiffRank targets, DiffMCQ
pairs): only the order inside an item counts, as for the benchmarks' tau and argmax."""

from __future__ import annotations

import torch
from torch import nn


def ranknet_loss(score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(score_i - score_j) over the options i, j of one item with
    target_i > target_j. score, target: (G, K) for G items of K options. Items whose
    targets are all equal order nothing; with none left, a zero that keeps the graph."""
    target = target.to(score.device)
    better = target[:, :, None] > target[:, None, :]  # (G, K, K)
    gap = score[:, :, None] - score[:, None, :]  # (G, K, K)
    losses = nn.functional.softplus(-gap[better])
    return losses.mean() if len(losses) else score.sum() * 0
