"""Collate tokenised samples into padded tensors with answer-only labels."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stepdiff.llm.prompt import InterleavedSample, TokenisedSample
from stepdiff.llm.scoring import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "TokenBatch", "collate"]


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, L) with VIDEO_TOKEN_ID placeholders
    attention_mask: torch.Tensor  # (B, L) 1 = real token
    labels: torch.Tensor  # (B, L) answer token ids, IGNORE_INDEX elsewhere
    # Soft targets for closed-form answers: a row's first answer token is right with
    # probability answer_probability (B,), and its alternative's first token, of id
    # alternative_ids (B,), with the rest; NaN for a row whose answer is simply right.
    answer_probability: torch.Tensor | None = None
    alternative_ids: torch.Tensor | None = None

    def with_soft_answers(
        self, probabilities: Sequence[float | None], alternative_ids: Sequence[int]
    ) -> TokenBatch:
        """This batch with soft first-token targets (None: the row's answer is plain)."""
        if len(probabilities) != len(self.labels) or len(alternative_ids) != len(self.labels):
            raise ValueError(
                f"{len(probabilities)} probabilities and {len(alternative_ids)} alternatives "
                f"for {len(self.labels)} rows"
            )
        return dataclasses.replace(
            self,
            answer_probability=torch.tensor(
                [math.nan if p is None else p for p in probabilities], dtype=torch.float32
            ),
            alternative_ids=torch.tensor(list(alternative_ids), dtype=torch.long),
        )


def collate(
    samples: Sequence[TokenisedSample | InterleavedSample],
    pad_id: int,
    *,
    padding_side: str = "right",
    max_length: int | None = None,
    require_answers: bool = False,
) -> TokenBatch:
    """Pad samples to one length; only answer tokens get labels.

    Nothing is truncated: a sample longer than ``max_length`` raises, and with
    ``require_answers`` a sample without answer tokens raises, because a sample whose
    answer was cut away would silently contribute no loss.
    """
    rows = []
    for index, sample in enumerate(samples):
        if require_answers and not sample.answer_ids:
            raise ValueError(f"sample {index}: the answer is empty, so it would carry no loss")
        ids, is_target = sample.ids_and_labels()
        if max_length is not None and len(ids) > max_length:
            raise ValueError(
                f"sample {index}: {len(ids)} tokens exceed max_length {max_length} "
                "(shorten the question or answer, or raise max_length)"
            )
        labels = [i if target else IGNORE_INDEX for i, target in zip(ids, is_target, strict=True)]
        rows.append((ids, labels))
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(rows):
        span = slice(0, len(ids)) if padding_side == "right" else slice(length - len(ids), length)
        input_ids[row, span] = torch.tensor(ids)
        labels[row, span] = torch.tensor(row_labels)
        mask[row, span] = 1
    return TokenBatch(input_ids=input_ids, attention_mask=mask, labels=labels)
