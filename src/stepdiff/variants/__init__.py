"""Components beside the paper's projector, one file each, registered by name (see
docs/training.md and docs/research.md)."""

from __future__ import annotations

from typing import Any

from stepdiff.variants.base import Component
from stepdiff.variants.caption_match import CaptionMatch
from stepdiff.variants.compare import Compare
from stepdiff.variants.words import WordsHead

COMPONENTS: dict[str, type[Component]] = {c.name: c for c in (Compare, CaptionMatch, WordsHead)}


def build_components(config: Any, input_dim: int, output_dim: int) -> dict[str, Component]:
    """The components a ProjectorConfig turns on, by name."""
    return {
        name: cls(config, input_dim, output_dim)
        for name, cls in COMPONENTS.items()
        if cls.enabled(config)
    }


__all__ = ["COMPONENTS", "Component", "build_components"]
