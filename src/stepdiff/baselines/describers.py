"""Text descriptions of clips for the Socratic baselines.

The source describer reads what automatic sources say about a clip: ImageNet object
tags and the narration files beside its video. The oracle describer reads SynthKitchen's
ground truth: a clip's description is the narration its generator speaks, which states
every attribute of every category (the step, ingredient, tool, vessel, motion,
sub-actions, doneness, plating and garnish).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stepdiff.errors import ConfigError
from stepdiff.synthkitchen.world import ClipSpec
from stepdiff.video.clip import ClipRef
from stepdiff.video.transcripts import clip_narration

if TYPE_CHECKING:
    from stepdiff.encoders.tags import ObjectTagger


class SourceDescriber:
    """ClipRef -> "Objects: frying pan, wooden spoon. Narration: ..." (cached per clip)."""

    def __init__(self, tagger: ObjectTagger | None = None, max_tags: int = 5) -> None:
        if tagger is None:
            from stepdiff.encoders.tags import ObjectTagger  # torch and the classifier

            tagger = ObjectTagger()
        self.tagger = tagger
        self.max_tags = max_tags
        self._known: dict[ClipRef, str] = {}

    def __call__(self, clip: ClipRef) -> str:
        if clip not in self._known:
            tags = ", ".join(tag.name for tag in self.tagger(clip)[: self.max_tags])
            narration = clip_narration(clip)
            parts = [f"Objects: {tags or 'none recognised'}."]
            parts += [f"Narration: {narration}"] if narration else []
            self._known[clip] = " ".join(parts)
        return self._known[clip]


class OracleDescriber:
    """ClipRef (resolved from a SynthKitchen clip id) -> its ground-truth description:
    its narration, or with ``fields`` the 16 fields that description alignment teaches
    the video tokens to spell (the text-only ceiling of such a model)."""

    def __init__(self, clips: dict[str, ClipSpec], fields: bool = False) -> None:
        self.clips = clips
        self.fields = fields

    @classmethod
    def from_file(cls, path: Path, fields: bool = False) -> OracleDescriber:
        """From a built benchmark's ``clips.jsonl`` (or the folder holding it)."""
        from stepdiff.synthkitchen.builder import load_clips

        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not (folder / "clips.jsonl").is_file():
            raise ConfigError(f"{path}: no SynthKitchen clips.jsonl there")
        return cls(load_clips(folder), fields)

    def __call__(self, clip: ClipRef) -> str:
        if clip.clip_id is None or clip.clip_id not in self.clips:
            raise ConfigError(f"clip {clip}: no ground truth (is it a SynthKitchen clip id?)")
        spec = self.clips[clip.clip_id]
        if self.fields:
            from stepdiff.data.descriptions import joined_description
            from stepdiff.synthkitchen.descriptions import description_fields

            return joined_description(description_fields(spec))
        from stepdiff.synthkitchen.render import describe_spec

        return describe_spec(spec)
