"""Each training clip's ground truth as a structured description, field by field.

``cook | two | white | onions; | steel | spatula; | cast-iron | wok; | in circles |
quickly; | add then stir, | skips nothing; | browned | in large chunks; | round plate with |
herbs`` (16 fields, always in this order, joined by spaces). The description-alignment
loss (stepdiff.train.describe) teaches the words head to spell each field in fixed
video-token slots, so slot ``k`` of every clip holds the same kind of fact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepdiff.synthkitchen.world import (
    MOTION_PHRASES,
    NUMBER_WORDS,
    SPEED_PHRASES,
    ClipSpec,
    final_state_phrase,
)


def description_fields(spec: ClipSpec) -> list[str]:
    """The clip's facts as the 16 fields of its description."""
    return [
        spec.keystep,
        NUMBER_WORDS[spec.quantity],
        spec.ingredient_color,
        f"{spec.ingredient};",
        spec.tool_color,
        f"{spec.tool};",
        spec.vessel_material,
        f"{spec.vessel};",
        MOTION_PHRASES[spec.motion],
        f"{SPEED_PHRASES[spec.speed]};",
        " then ".join(spec.actions) + ",",
        f"skips {spec.skipped};" if spec.skipped else "skips nothing;",
        spec.doneness,
        f"{final_state_phrase(spec.final_state)};",
        f"{spec.plate} with",
        "no garnish" if spec.garnish == "none" else spec.garnish,
    ]


def description_rows(clips: Iterable[ClipSpec]) -> list[dict[str, Any]]:
    """``{clip_id, fields}`` per clip: the records of the training data kind
    ``descriptions``."""
    return [{"clip_id": spec.clip_id, "fields": description_fields(spec)} for spec in clips]
