"""A clip's description from automatic sources (object tags and narration), as the
Socratic baseline and, later, the QA generator read it."""

from __future__ import annotations

from stepdiff.datagen.tags import ObjectTagger
from stepdiff.datagen.transcripts import clip_narration
from stepdiff.video.clip import ClipRef


class SourceDescriber:
    """ClipRef -> "Objects: frying pan, wooden spoon. Narration: ..." (cached per clip)."""

    def __init__(self, tagger: ObjectTagger | None = None, max_tags: int = 5) -> None:
        self.tagger = tagger or ObjectTagger()
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
