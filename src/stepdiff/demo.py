"""The demo: two generated clips of a cooking step that differ visibly, and questions."""

from __future__ import annotations

from pathlib import Path

from stepdiff.paths import cache_root
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

# The reference stirs yellow food in a dark pan with a wooden spoon in circles; the
# candidate whisks orange food back and forth in a red pot.
REFERENCE_SCENE = SceneSpec(
    vessel="pan",
    vessel_color=(60, 60, 60),
    tool="spoon",
    tool_color=(200, 160, 90),
    food_color=(230, 200, 60),
    motion="circle",
)
CANDIDATE_SCENE = SceneSpec(
    vessel="pot",
    vessel_color=(170, 40, 40),
    tool="whisk",
    tool_color=(190, 190, 200),
    food_color=(235, 130, 40),
    motion="back_and_forth",
)
DEMO_QUESTIONS = [
    "What is the main difference between these videos in the category Tools/Equipment?",
    "What did I do wrong compared to the reference?",
    "Do these two videos show the same technique? Answer YES or NO.",
]


def make_demo_clips(folder: Path | None = None) -> tuple[ClipRef, ClipRef]:
    """Write (or reuse) the two demo clips; returns (reference, candidate)."""
    folder = Path(folder) if folder is not None else cache_root() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for name, scene in (("reference", REFERENCE_SCENE), ("candidate", CANDIDATE_SCENE)):
        path = folder / f"{name}.mp4"
        if not path.is_file():
            # Render beside the target and rename, so an interrupted run leaves no half clip.
            partial = path.with_name(f".{path.stem}.partial{path.suffix}")
            write_synthetic_clip(partial, scene, seconds=4.0, fps=24, size=224)
            partial.replace(path)
        clips.append(ClipRef(path))
    return clips[0], clips[1]
