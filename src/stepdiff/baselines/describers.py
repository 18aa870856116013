"""Text descriptions of clips for the Socratic baseline.

The oracle describer reads SynthKitchen's ground truth: a clip's description is the
narration its generator speaks, which states every attribute of every category (the
step, ingredient, tool, vessel, motion, sub-actions, doneness, plating and garnish).
"""

from __future__ import annotations

from pathlib import Path

from stepdiff.errors import ConfigError
from stepdiff.synthkitchen.world import ClipSpec
from stepdiff.video.clip import ClipRef


def describe_spec(spec: ClipSpec) -> str:
    """The clip's ground-truth description: its narration sentences, in order."""
    from stepdiff.synthkitchen.render import narration

    return " ".join(sentence for _, sentence in narration(spec))


class OracleDescriber:
    """ClipRef (resolved from a SynthKitchen clip id) -> its ground-truth description."""

    def __init__(self, clips: dict[str, ClipSpec]) -> None:
        self.clips = clips

    @classmethod
    def from_file(cls, path: Path) -> OracleDescriber:
        """From a built benchmark's ``clips.jsonl`` (or the folder holding it)."""
        from stepdiff.synthkitchen.builder import load_clips

        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not (folder / "clips.jsonl").is_file():
            raise ConfigError(f"{path}: no SynthKitchen clips.jsonl there")
        return cls(load_clips(folder))

    def __call__(self, clip: ClipRef) -> str:
        if clip.clip_id is None or clip.clip_id not in self.clips:
            raise ConfigError(f"clip {clip}: no ground truth (is it a SynthKitchen clip id?)")
        return describe_spec(self.clips[clip.clip_id])
