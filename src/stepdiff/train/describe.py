"""Description slots: the targets of the description-alignment loss.

Each description is a fixed sequence of fields (keystep, quantity, colour, ingredient,
tool, ...). Field ``i`` always takes the same ``widths[i]`` video-token slots: its tokens
(as the LLM tokenises the field where it stands in the joined text: after a space, except
the first field and a field that starts a new line), then a space token as padding. So
slot ``k`` of every clip holds the same kind of fact, and the words head learns, slot by
slot, which of the frozen LLM's own word embeddings to emit: a cross-entropy per slot,
with no LLM pass (the paper's answer loss needs a forward and backward through the LLM
for every sample).

Read with the space-padded slots, the LLM scores DiffMCQ as well as from the same
descriptions written as plain text (docs/research.md, "Description alignment").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stepdiff.data.descriptions import separators
from stepdiff.errors import ConfigError, DataFormatError
from stepdiff.train.data import TrainingRecord

PAD_TEXT = " "  # what a slot beyond its field's tokens holds


@dataclass(frozen=True)
class SlotLayout:
    """How many video-token slots each field of a description takes."""

    widths: tuple[int, ...]
    pad_id: int

    @property
    def slots(self) -> int:
        return sum(self.widths)

    def targets(self, tokenizer, fields: Sequence[str], truncate: bool = False) -> list[int]:
        """The token id of each slot (``slots`` of them) for one description. A field
        longer than its slots is an error, or cut to them with ``truncate`` (a dev clip's
        field that no training clip had: it cannot be spelled in full, so it counts wrong)."""
        ids: list[int] = []
        for width, tokens in zip(self.widths, field_tokens(tokenizer, fields), strict=True):
            if len(tokens) > width and not truncate:
                raise ValueError(f"a field of {len(tokens)} tokens in {width} slots")
            ids += tokens[:width] + [self.pad_id] * (width - len(tokens))
        return ids

    def fields_spelled(self, predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Whether each field is spelled right, every slot of it: (B, N) ids -> (B, F)."""
        right = predicted == targets
        return torch.stack([part.all(1) for part in right.split(list(self.widths), dim=1)], 1)


def field_tokens(tokenizer, fields: Sequence[str]) -> list[list[int]]:
    """Each field's token ids, as it reads in the joined description."""
    return [
        tokenizer(before + text, add_special_tokens=False)["input_ids"]
        for before, text in zip(separators(fields), fields, strict=True)
    ]


def slot_layout(tokenizer, records: Sequence[TrainingRecord]) -> SlotLayout:
    """The widest tokenisation of each field over ``records`` (all with as many fields)."""
    counts = {len(record.fields) for record in records}
    if len(counts) != 1:
        raise DataFormatError(
            f"descriptions must all have the same number of fields (found {sorted(counts)}; "
            f"e.g. {records[0].source})"
        )
    widths = [0] * counts.pop()
    for record in records:
        for index, tokens in enumerate(field_tokens(tokenizer, record.fields)):
            widths[index] = max(widths[index], len(tokens))
    pad = tokenizer(PAD_TEXT, add_special_tokens=False)["input_ids"]
    if len(pad) != 1:
        raise ConfigError(f"this LLM's tokenizer splits {PAD_TEXT!r} into {len(pad)} tokens")
    return SlotLayout(tuple(widths), pad[0])


def check_slots(layout: SlotLayout, num_latents: int) -> None:
    """The words head emits one token per latent: the layout must fill them exactly."""
    if layout.slots != num_latents:
        raise ConfigError(
            f"the descriptions take {layout.slots} video-token slots (field widths "
            f"{list(layout.widths)}) but the projector has {num_latents} latents: set "
            f"projector.num_latents={layout.slots} in model_overrides"
        )


def slot_vocabulary(tokenizer, layout: SlotLayout, records: Sequence[TrainingRecord]) -> set[int]:
    """Every token a slot target holds, padding included."""
    return {t for record in records for t in layout.targets(tokenizer, record.fields)}
