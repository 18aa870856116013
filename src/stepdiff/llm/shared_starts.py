"""Score rows that share the start of their prompt by running that start once.

Rows of one scoring batch often share the start of their prompt: questions about one
pair share everything up to the question, DiffRank's four candidates of one reference
share everything up to the candidate video, and every row shares the system text before
the first video. That start runs once per group of neighbouring rows and its key/value
cache is copied to each row, which then runs the rest of its prompt. Equal embeddings
are what makes the sharing exact, whatever produced them.

Shapes: B rows, G groups, L sequence length, H LLM width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stepdiff.llm.decoding import with_cache
from stepdiff.llm.prompt import VIDEO_TOKEN_ID


def start_candidates(input_ids: torch.Tensor, num_videos: int, tokens_per_video: int) -> list[int]:
    """Where each video starts, and where the last one ends, when that position is the
    same in every row of ``input_ids`` (B, L), in prompt order."""
    seen = (input_ids == VIDEO_TOKEN_ID).long().cumsum(dim=1)  # (B, L)
    starts = []
    for video in range(num_videos + 1):
        at = (seen <= video * tokens_per_video).sum(dim=1)  # (B,) positions before
        if video == num_videos:  # the end of the last video: its placeholders counted
            at = (seen < video * tokens_per_video).sum(dim=1) + 1
        if bool((at == at[0]).all()) and 0 < int(at[0]) < input_ids.shape[1]:
            starts.append(int(at[0]))
    return starts


@dataclass(frozen=True)
class PrefixGroups:
    """Neighbouring rows whose prompts start with the same ``length`` embeddings."""

    length: int
    first_rows: torch.Tensor  # (G,) the first row of each group
    group_of_row: torch.Tensor  # (B,) each row's group


def group_shared_starts(
    embeds: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> PrefixGroups | None:
    """Group neighbouring rows of ``embeds`` (B, L, H) whose first ``length`` embeddings
    are equal, all of them real tokens; None when no two rows share (nothing to gain)."""
    if length < 1 or not bool(attention_mask[:, :length].all()):
        return None
    first_rows, group_of_row = [0], [0]
    for row in range(1, embeds.shape[0]):
        if not torch.equal(embeds[row, :length], embeds[first_rows[-1], :length]):
            first_rows.append(row)
        group_of_row.append(len(first_rows) - 1)
    if len(first_rows) == embeds.shape[0]:
        return None
    device = embeds.device
    return PrefixGroups(
        length, torch.tensor(first_rows, device=device), torch.tensor(group_of_row, device=device)
    )


def best_shared_start(
    embeds: torch.Tensor, attention_mask: torch.Tensor, starts: Sequence[int]
) -> PrefixGroups | None:
    """Of the candidate ``starts``, the grouping that saves the most token positions
    ((rows - groups) x length); None when none saves any."""
    best, saved = None, 0
    for length in starts:
        groups = group_shared_starts(embeds, attention_mask, length)
        if groups is None:
            continue
        saving = (embeds.shape[0] - len(groups.first_rows)) * length
        if saving > saved:
            best, saved = groups, saving
    return best


@torch.no_grad()
def run_grouped(
    llm: nn.Module, embeds: torch.Tensor, attention_mask: torch.Tensor, groups: PrefixGroups
) -> torch.Tensor:
    """The LLM's last hidden states after each row's shared start -> (B, L - length, H).

    The G shared starts run as one batch; their cache is copied to each group's rows,
    which then run the rest of their prompts (right padding stays after real tokens).
    """
    length = groups.length
    _, cache = with_cache(llm.base_model, None, inputs_embeds=embeds[groups.first_rows, :length])
    cache.batch_select_indices(groups.group_of_row)  # (G, ...) -> (B, ...)
    rows, total = attention_mask.shape
    positions = torch.arange(length, total, device=embeds.device).expand(rows, -1)  # (B, S)
    hidden, _ = with_cache(
        llm.base_model,
        cache,
        inputs_embeds=embeds[:, length:],
        attention_mask=attention_mask,
        position_ids=positions,
    )
    return hidden
