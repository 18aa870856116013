"""Step descriptions aggregated by an LLM from automatic sources (paper Sec. 3.2, step 1).

Each clip's sources (object tags with detector scores, action captions, ASR narration,
video metadata) are written as one structured text, the versioned ``aggregate`` prompt
asks an LLM to merge them into a description (action, then objects with attributes,
then narration), and the reply is parsed. A reply that does not parse is recorded with
its reason instead of raising, so one bad reply never stops a run of thousands; callers
count ``error``s. :func:`template_description` writes the same structure without an LLM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stepdiff.datagen.prompting import Prompt, load_prompt, parse_description_reply, render
from stepdiff.errors import ConfigError, DataFormatError
from stepdiff.llm.textgen import TextGenerationError, TextGenerator, generate_each

MAX_TAGS = 10  # tags beyond the top ten by score are detector noise, and cost prompt tokens
TEMPLATE_MIN_SCORE = 0.1  # without an LLM to weigh them, weaker tags are left out
TEMPLATE_MAX_TAGS = 5
ECHO_MIN_CHARS = 40  # shorter fragments ("The objects with their attributes:") may be fine
ECHO_ERROR = "reply repeats the prompt's instructions"


@dataclass(frozen=True)
class StepSources:
    """What automatic tools found in one clip. ``tags`` are (name, score in [0, 1])."""

    clip_id: str
    keystep: str
    tags: list[tuple[str, float]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    narration: str = ""
    metadata: str = ""


@dataclass(frozen=True)
class DescriptionResult:
    """One clip's description (None if the reply did not parse; ``error`` says why),
    with what produced it: prompt id, model name and seed."""

    clip_id: str
    description: str | None
    error: str | None
    prompt_id: str
    model: str
    seed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ranked_tags(tags: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Tags by decreasing score (ties by name, so the order never depends on input order)."""
    return sorted(tags, key=lambda tag: (-tag[1], tag[0]))


def sources_text(s: StepSources, max_tags: int = MAX_TAGS) -> str:
    """The structured text the LLM reads: one labelled line per source, "none" when a
    source is empty (so the LLM knows it was looked for, not forgotten).

    Example::

        Keystep: stir-fry the onions
        Metadata: Easy vegetable stir-fry
        Object tags (score): frying pan (0.91), wooden spoon (0.55)
        Action captions: a person stirs onions in a pan | onions sizzle in oil
        Narration: now I stir the onions until golden
    """
    tags = ", ".join(f"{name} ({score:.2f})" for name, score in _ranked_tags(s.tags)[:max_tags])
    captions = " | ".join(c.strip() for c in s.captions if c.strip())
    lines = [
        f"Keystep: {s.keystep.strip() or 'unknown'}",
        f"Metadata: {' '.join(s.metadata.split()) or 'none'}",
        f"Object tags (score): {tags or 'none'}",
        f"Action captions: {captions or 'none'}",
        f"Narration: {' '.join(s.narration.split()) or 'none'}",
    ]
    return "\n".join(lines)


def template_description(s: StepSources) -> str:
    """A description with the LLM's structure, written by rule: the action (first caption,
    else the keystep), the objects (up to five tags scoring at least 0.1), the narration.

    >>> template_description(StepSources("v_0_5", "stir the onions", [("wok", 0.8)]))
    'Action: stir the onions. Objects: wok. Narration: none.'
    """
    captions = [c.strip().rstrip(".") for c in s.captions if c.strip()]
    action = captions[0] if captions else s.keystep.strip().rstrip(".") or "unknown"
    objects = [n for n, score in _ranked_tags(s.tags) if score >= TEMPLATE_MIN_SCORE]
    narration = " ".join(s.narration.split()).rstrip(".")
    return (
        f"Action: {action}. "
        f"Objects: {', '.join(objects[:TEMPLATE_MAX_TAGS]) or 'none recognised'}. "
        f"Narration: {narration or 'none'}."
    )


def instruction_fragments(prompt: Prompt) -> list[str]:
    """The prompt's own sentences and clauses (not its filled-in fields), lower-cased with
    whitespace collapsed: small LLMs (SmolLM2-135M) often copy these back as their reply."""
    text = re.sub(r"\{\w+\}", "\n", "\n".join(t for _, t in prompt.messages))
    pieces = re.split(r"(?<=[.:!?])\s+|\n", text)
    fragments = (" ".join(piece.split()).lower() for piece in pieces)
    return [f for f in fragments if len(f) >= ECHO_MIN_CHARS]


def _parse(reply: str, fragments: Sequence[str]) -> tuple[str | None, str | None]:
    """(description, None) or (None, reason)."""
    try:
        description = parse_description_reply(reply)
    except DataFormatError as failure:
        return None, str(failure)
    lowered = description.lower()
    if any(fragment in lowered for fragment in fragments):
        return None, ECHO_ERROR
    return description, None


def aggregate_descriptions(
    sources: Sequence[StepSources],
    generator: TextGenerator,
    *,
    prompt_version: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 160,
    temperature: float = 0.0,
) -> list[DescriptionResult]:
    """One description per clip, in order, generated ``batch_size`` prompts at a time.

    Unparseable replies, replies that copy the prompt's instructions and prompts too long
    for the LLM's context give a result with ``description=None`` and the reason in
    ``error``; errors of the generator itself (a server down) propagate.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size {batch_size}: must be at least 1")
    prompt = load_prompt("aggregate", prompt_version)
    fragments = instruction_fragments(prompt)
    results: list[DescriptionResult] = []
    for first in range(0, len(sources), batch_size):
        batch = sources[first : first + batch_size]
        prompts = [render(prompt, sources=sources_text(s)) for s in batch]
        replies = generate_each(
            generator, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
        )
        if len(replies) != len(batch):
            raise TextGenerationError(
                f"text generator {generator.name!r} returned {len(replies)} replies "
                f"for {len(batch)} prompts"
            )
        for s, reply in zip(batch, replies, strict=True):
            description, error = (
                (None, str(reply)) if isinstance(reply, Exception) else _parse(reply, fragments)
            )
            results.append(
                DescriptionResult(s.clip_id, description, error, prompt.id, generator.name, seed)
            )
    return results
