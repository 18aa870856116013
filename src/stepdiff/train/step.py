"""One projector-only optimisation step."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stepdiff.model.stepdiff import StepDiffModel


def projector_optimizer(model: StepDiffModel, lr: float = 1e-4, weight_decay: float = 0.0):
    """AdamW over the projector's parameters only (the frozen parts are never handed in)."""
    return torch.optim.AdamW(model.projector.parameters(), lr=lr, weight_decay=weight_decay)


def train_step(
    model: StepDiffModel,
    optimizer: torch.optim.Optimizer,
    reference: torch.Tensor,
    candidate: torch.Tensor,
    questions: Sequence[str],
    answers: Sequence[str],
) -> float:
    """Forward, backward and update on one batch of cached features (B, T, P, D); the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = model.answer_loss(reference, candidate, questions, answers)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
