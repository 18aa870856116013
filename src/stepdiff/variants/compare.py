"""The comparing projector: each video of a pair is read against the other.

The paper's projector reads each video alone and leaves the comparison to the LLM,
which a small frozen LLM does not do even from true attributes written as text. Here
each video of a (reference, candidate) pair also gets a summary of how its frames differ
from the other's (standardised, frame by frame in time order: the mean signed
difference, which says which way, and the mean absolute one, which says how much),
added to its latents before they read the video. The summary's last layer starts at
zero: untrained, it is the paper's projector.

A linear read-out of the summary scores each pair's similarity for the comparison loss
(training config ``comparison_weight``: RankNet on DiffRank items of training clips);
the LLM never sees it. Teaching the comparison this way first, without the LLM, is the
stage that made StepDiff's P(YES) rank DiffRank best (docs/training.md, "The
comparing projector and the comparison loss").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stepdiff.ranknet import ranknet_loss
from stepdiff.variants.base import Component


class Compare(Component):
    name = "compare"
    switch = "projector.compare=true"
    steers = True
    weight_key = "comparison_weight"
    trains_on = "pair_rank"
    standardised_inputs = True
    legacy_prefixes = ("compare_proj.", "comparison_readout.")
    optional_weights = ("comparison_readout.",)  # added later; serves a loss only

    def __init__(self, config: Any, input_dim: int, output_dim: int) -> None:
        super().__init__()
        width = config.width
        self.compare_proj = nn.Sequential(
            nn.Linear(2 * input_dim, width), nn.GELU(), nn.Linear(width, width)
        )
        nn.init.zeros_(self.compare_proj[-1].weight)
        nn.init.zeros_(self.compare_proj[-1].bias)
        self.comparison_readout = nn.Linear(width, 1)

    @classmethod
    def enabled(cls, config: Any) -> bool:
        return bool(config.compare)

    def comparison(self, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """How each video differs from the other of its pair: 2 x (B, T, P, D),
        standardised -> (B, W)."""
        if other.shape != own.shape:
            raise ValueError(
                f"compared videos differ in shape: {tuple(own.shape)} and {tuple(other.shape)}"
            )
        difference = own.mean(dim=2) - other.mean(dim=2)  # (B, T, D)
        summary = torch.cat([difference.mean(dim=1), difference.abs().mean(dim=1)], dim=-1)
        return self.compare_proj(summary)  # (B, W)

    def steer(self, latents: torch.Tensor, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return latents + self.comparison(own, other)[:, None, :]

    def score(
        self, reference: torch.Tensor, candidate: torch.Tensor, text: torch.Tensor | None
    ) -> torch.Tensor:
        """The read-out of the candidate's comparison with its reference -> (B,)."""
        return self.comparison_readout(self.comparison(candidate, reference))[:, 0]

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ranknet_loss(scores, targets)

    def training_flops(self) -> float:
        """Its MLP on the (2D) difference summary and the (W -> 1) read-out; the summary
        itself (means and differences) is elementwise work, not counted."""
        first, _, last = self.compare_proj
        layers = (first, last, self.comparison_readout)
        return 3.0 * 2 * sum(layer.weight.numel() for layer in layers)
