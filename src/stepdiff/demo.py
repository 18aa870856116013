"""The demo: two rendered clips of a cooking step that differ visibly, and questions."""

from __future__ import annotations

from pathlib import Path

from stepdiff.paths import cache_root
from stepdiff.synthkitchen.render import render_clip
from stepdiff.synthkitchen.world import ClipSpec
from stepdiff.video.clip import ClipRef

# Drawn by SynthKitchen's renderer, the world the shipped model was trained on, with
# values of their own: the reference stirs two yellow peppers in circles in a cast-iron
# pan with a wooden spoon; the candidate whisks orange dressing back and forth in a red
# enamel pot with a steel whisk. (The split only names where a clip of a benchmark would
# belong; these clips belong to none.)
REFERENCE_SPEC = ClipSpec(
    video_uid="demo_reference",
    start=0.0,
    end=3.0,
    keystep="stir-fry",
    split="test",
    seed=7,
    ingredient="peppers",
    ingredient_color="yellow",
    quantity=2,
    tool="spoon",
    tool_color="wooden",
    vessel="pan",
    vessel_material="cast-iron",
    motion="circular",
    speed="medium",
    actions=("oil", "add", "work", "season"),
    skipped=None,
    doneness="golden",
    final_state="large chunks",
    plate="round plate",
    garnish="herbs",
)
CANDIDATE_SPEC = ClipSpec(
    video_uid="demo_candidate",
    start=0.0,
    end=3.0,
    keystep="whisk",
    split="test",
    seed=8,
    ingredient="dressing",
    ingredient_color="orange",
    quantity=2,
    tool="whisk",
    tool_color="steel",
    vessel="pot",
    vessel_material="enamel",
    motion="back-and-forth",
    speed="fast",
    actions=("add", "liquid", "season", "work"),
    skipped=None,
    doneness="evenly mixed",
    final_state="smooth",
    plate="serving bowl",
    garnish="none",
)
# The model's prompt calls the two clips "the first video" and "the second video"
# (the paper's prompt), so a question about the user's mistakes says which is theirs.
DEMO_QUESTIONS = [
    "What is the main difference between these videos in the category Tools/Equipment?",
    "What did I do wrong in the second video compared to the first?",
    "Do these two videos show the same technique? Answer YES or NO.",
]


def make_demo_clips(folder: Path | None = None) -> tuple[ClipRef, ClipRef]:
    """Write (or reuse) the two demo clips; returns (reference, candidate)."""
    folder = Path(folder) if folder is not None else cache_root() / "demo"
    clips = []
    for name, spec in (("reference", REFERENCE_SPEC), ("candidate", CANDIDATE_SPEC)):
        # The name carries the clip's version: a cache holding clips of an older demo
        # renders the new ones beside them instead of reusing those.
        path = folder / f"synthkitchen_{name}.mp4"
        if not path.is_file():
            render_clip(path, spec)  # atomic: an interrupted run leaves no half clip
        clips.append(ClipRef(path))
    return clips[0], clips[1]
