"""The paper's answer loss on the labelled tokens, with soft targets and ranking items.

Shapes: R rows, L sequence length, K labelled positions, V vocabulary, G items of K'
options (R = G x K').
"""

from __future__ import annotations

import torch
from torch import nn

from stepdiff.llm.scoring import IGNORE_INDEX
from stepdiff.model.batching import TokenBatch
from stepdiff.ranknet import ranknet_loss


def answer_loss(
    batch: TokenBatch,
    keep: torch.Tensor,
    logits: torch.Tensor,
    targets: torch.Tensor,
    rank_scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the labelled tokens: keep (R, L-1) marks the positions that
    predict one, logits (K, V) and targets (K,) are at them. Soft rows score their first
    answer token against both answers (:func:`soft_first_tokens`); with ``rank_scores``
    (G, K'), the loss is RankNet's on each row's score instead (:func:`rank_loss`)."""
    if rank_scores is not None:
        return rank_loss(batch, keep, logits, targets, rank_scores)
    loss = nn.functional.cross_entropy(logits.float(), targets, reduction="none")  # (K,)
    if batch.answer_probability is not None and batch.alternative_ids is not None:
        loss = soft_first_tokens(batch, keep, logits, loss)
    return loss.mean()


def first_tokens(keep: torch.Tensor) -> torch.Tensor:
    """(K,) whether each labelled position is its row's first."""
    return (keep & (keep.cumsum(dim=1) == 1))[keep]


def rank_loss(
    batch: TokenBatch,
    keep: torch.Tensor,
    logits: torch.Tensor,
    targets: torch.Tensor,
    rank_scores: torch.Tensor,
) -> torch.Tensor:
    """RankNet's pairwise loss on each row's score, which is what the benchmark reads:
    with an alternative answer (DiffRank's "YES" against "NO"), log p(answer) - log
    p(alternative) at the first answer token, the log-odds of P(YES); without one (a
    DiffMCQ caption), the answer's summed log-likelihood. Only the order inside an item
    counts, as for the benchmark's tau and argmax."""
    log_probs = logits.float().log_softmax(dim=-1)  # (K, V)
    if batch.alternative_ids is not None:
        first = first_tokens(keep)
        alternative = batch.alternative_ids.to(log_probs.device)[:, None]  # (R, 1)
        answer = targets[first][:, None]  # (R, 1)
        score = log_probs[first].gather(1, answer) - log_probs[first].gather(1, alternative)
    else:
        row_of = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]
        token = log_probs.gather(1, targets[:, None])[:, 0]  # (K,)
        score = token.new_zeros(len(keep)).index_add(0, row_of, token)  # (R,)
    return ranknet_loss(score.reshape(rank_scores.shape), rank_scores)


def soft_first_tokens(
    batch: TokenBatch, keep: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor
) -> torch.Tensor:
    """The labelled tokens' losses (K,) with each soft row's first answer token scored
    against its two-way target: p * CE(answer) + (1 - p) * CE(alternative), lowest where
    the model gives the answer probability p, instead of a coin flip's label."""
    assert batch.answer_probability is not None and batch.alternative_ids is not None
    rows = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]  # (K,)
    probability = batch.answer_probability.to(loss.device)[rows]  # (K,)
    soft = first_tokens(keep) & ~probability.isnan()
    alternative = torch.where(soft, batch.alternative_ids.to(loss.device)[rows], IGNORE_INDEX)
    alternative_loss = nn.functional.cross_entropy(
        logits.float(), alternative, reduction="none"
    )  # (K,): 0 where ignored
    weight = torch.where(soft, probability, 1.0)
    return weight * loss + (1 - weight) * alternative_loss
