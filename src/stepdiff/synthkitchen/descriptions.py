"""Each training clip's ground truth as a structured description, field by field.

16 fields, always in this order, that read as seven labelled lines::

    Step: cook.
    Ingredients: two white onions.
    Tools/Equipment: steel spatula, cast-iron wok.
    Technique: in circles, quickly.
    Actions: add then stir, skips nothing.
    Visuals: browned, in large chunks.
    Serving / Presentation: round plate with herbs.

A line's label rides in its first field (``"\nIngredients: two"``), so the fields still
hold one fact each. The description-alignment loss (stepdiff.train.describe) teaches the
words head to spell each field in fixed video-token slots, so slot ``k`` of every clip
holds the same kind of fact. The labelled lines are what the frozen LLM compares best:
reading the true descriptions of 48 DiffRank training rows, its P(YES) ranked at 0.34
against 0.13 for the same fields on one line (docs/research.md, "The description format").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepdiff.data.categories import CATEGORIES
from stepdiff.synthkitchen.world import (
    MOTION_PHRASES,
    NUMBER_WORDS,
    SPEED_PHRASES,
    ClipSpec,
    final_state_phrase,
)

# Each line is labelled with its benchmark category, in the words DiffRank's question uses
# ("Do these two videos show the same Tools/Equipment?").
INGREDIENTS, TOOLS, TECHNIQUE, ACTIONS, VISUALS, SERVING = CATEGORIES


def description_fields(spec: ClipSpec) -> list[str]:
    """The clip's facts as the 16 fields of its description."""
    garnish = "no garnish" if spec.garnish == "none" else spec.garnish
    return [
        f"Step: {spec.keystep}.",
        f"\n{INGREDIENTS}: {NUMBER_WORDS[spec.quantity]}",
        spec.ingredient_color,
        f"{spec.ingredient}.",
        f"\n{TOOLS}: {spec.tool_color}",
        f"{spec.tool},",
        spec.vessel_material,
        f"{spec.vessel}.",
        f"\n{TECHNIQUE}: {MOTION_PHRASES[spec.motion]},",
        f"{SPEED_PHRASES[spec.speed]}.",
        f"\n{ACTIONS}: " + " then ".join(spec.actions) + ",",
        f"skips {spec.skipped}." if spec.skipped else "skips nothing.",
        f"\n{VISUALS}: {spec.doneness},",
        f"{final_state_phrase(spec.final_state)}.",
        f"\n{SERVING}: {spec.plate} with",
        f"{garnish}.",
    ]


def description_rows(clips: Iterable[ClipSpec]) -> list[dict[str, Any]]:
    """``{clip_id, fields}`` per clip: the records of the training data kind
    ``descriptions``."""
    return [{"clip_id": spec.clip_id, "fields": description_fields(spec)} for spec in clips]
