"""Interleaved (video, narration) data and single-video QA (paper Sec. 3.3).

StepDiff is initialised from an "Interleaved" model trained on sequences of clips of
one instructional video with their narrations, and keeps that data in the mix while
fine-tuning (ablation: without it, MCQ accuracy drops 0.541 -> 0.499). The single-video
records train the VCLM baseline: captions and attribute questions about one clip.

- ``interleaved.jsonl``: windows of 2 consecutive clips (time order) of one source
  video whose narrations are both non-empty.
- ``single_video.jsonl``: per clip, "Describe the step in this video." answered by its
  description, "What step is shown in this video?" by its keystep, and, for
  SynthKitchen clips, questions on attributes from the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stepdiff.datagen.records import InterleavedRecord, SingleVideoRecord
from stepdiff.synthkitchen.world import (
    GARNISH_PHRASES,
    MOTION_PHRASES,
    SPEED_PHRASES,
    ClipSpec,
    capitalize,
    final_state_phrase,
    plate_phrase,
    quantity_phrase,
    tool_phrase,
    vessel_phrase,
)
from stepdiff.video.clip import parse_clip_id

WINDOW = 2
DESCRIBE_QUESTION = "Describe the step in this video."
KEYSTEP_QUESTION = "What step is shown in this video?"


def time_order(clip_ids: Sequence[str]) -> list[str]:
    """Clip ids of one video by start time (then end, then id)."""

    def when(clip_id: str) -> tuple[float, float, str]:
        parsed = parse_clip_id(clip_id)
        return parsed.start, parsed.end, clip_id

    return sorted(clip_ids, key=when)


def interleaved_windows(
    video_uid: str, narrations: dict[str, str], window: int = WINDOW
) -> list[InterleavedRecord]:
    """Windows of ``window`` consecutive clips of ``video_uid`` (``narrations`` maps its
    clip ids to narration) in which every clip has a non-empty narration."""
    ordered = time_order(list(narrations))
    records = []
    for first in range(len(ordered) - window + 1):
        clips = ordered[first : first + window]
        texts = [narrations[c].strip() for c in clips]
        if all(texts):
            records.append(InterleavedRecord(video_uid, clips, texts))
    return records


def attribute_questions(spec: ClipSpec) -> list[tuple[str, str]]:
    """Questions about one SynthKitchen clip, answered from its ground truth."""
    garnish = "no garnish" if spec.garnish == "none" else GARNISH_PHRASES[spec.garnish]
    return [
        (
            "Which ingredient is used, and how much?",
            capitalize(quantity_phrase(spec.ingredient, spec.quantity, spec.ingredient_color))
            + ".",
        ),
        (
            "Which tool does the person use?",
            capitalize(tool_phrase(spec.tool, spec.tool_color)) + ".",
        ),
        (
            "What is the food prepared in?",
            capitalize(vessel_phrase(spec.vessel, spec.vessel_material)) + ".",
        ),
        (
            "How does the person move the tool?",
            capitalize(f"{MOTION_PHRASES[spec.motion]}, {SPEED_PHRASES[spec.speed]}."),
        ),
        (
            "How does the food look at the end?",
            capitalize(f"{spec.doneness} and {final_state_phrase(spec.final_state)}."),
        ),
        ("How is the food served?", capitalize(f"{plate_phrase(spec.plate)} with {garnish}.")),
    ]


def single_video_records(
    description: dict[str, Any], spec: ClipSpec | None
) -> list[SingleVideoRecord]:
    """Single-clip QA for one ``descriptions.jsonl`` record (and its ground truth)."""
    clip_id, uid = description["clip_id"], description["video_uid"]
    records = []
    if description.get("description"):
        records.append(
            SingleVideoRecord(
                clip_id, uid, DESCRIBE_QUESTION, description["description"], "description"
            )
        )
    records.append(
        SingleVideoRecord(
            clip_id, uid, KEYSTEP_QUESTION, f"The step is: {description['keystep']}.", "metadata"
        )
    )
    if spec is not None:
        records += [
            SingleVideoRecord(clip_id, uid, q, a, "metadata") for q, a in attribute_questions(spec)
        ]
    return records
