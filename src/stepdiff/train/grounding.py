"""Word grounding: teach the "words" projector head to name what a clip shows.

Training through the frozen LLM alone teaches the answers' wording long before it teaches
the projector to read the videos (docs/research.md). Clips that come with their own text
(single-video answers, interleaved narrations) give a direct signal instead: each content
word of a clip's texts should be the word that one of its video tokens picks. The loss
needs only the projector, so a grounding-only stage runs hundreds of samples per second
on a CPU, and the LLM then reads the video tokens as the words they are.

Shapes: B videos, N video tokens per video, K words in the vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from stepdiff.train.data import TrainingRecord


@dataclass(frozen=True)
class WordGrounding:
    """The words head's vocabulary (LLM token ids) and, per clip, the positions in it of
    the words its texts name."""

    vocabulary: tuple[int, ...]
    targets: Mapping[str, tuple[int, ...]]

    def targets_of(self, clips: Sequence[str]) -> list[tuple[int, ...]]:
        return [self.targets.get(clip, ()) for clip in clips]


def clip_texts(records: Sequence[TrainingRecord]) -> dict[str, list[str]]:
    """Texts about one clip: single-video answers and each interleaved clip's narration.
    Pair answers speak of two clips at once, so they ground neither."""
    texts: dict[str, list[str]] = {}
    for record in records:
        if record.kind == "single_video":
            texts.setdefault(record.clips[0], []).append(record.answer)
        elif record.kind == "interleaved":
            for clip, narration in zip(record.clips, record.narrations, strict=True):
                texts.setdefault(clip, []).append(narration)
    return texts


def word_tokens(tokenizer, text: str) -> list[int]:
    """The first token of each word of ``text``, lower-cased and tokenised as it would be
    after a space: one token per word, whole words rather than the pieces a sentence's
    first word or a rare word's tail become ("Browned" -> "B" "rowned"; " browned" is
    one token, " ladle" starts with " lad")."""
    tokens = []
    for word in re.findall(r"[a-z]+", text.lower()):
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        # Some tokenizers give the space a token of its own: take the first with letters.
        first = next((t for t in ids if tokenizer.decode([t]).strip().isalpha()), None)
        if first is not None:
            tokens.append(first)
    return tokens


def build_word_grounding(
    tokenizer,
    texts: Mapping[str, Sequence[str]],
    *,
    vocabulary: Sequence[int] | None = None,
    max_clip_fraction: float = 0.3,
) -> WordGrounding:
    """Vocabulary: the word tokens (``word_tokens``) of all the texts, unless given (a
    started projector keeps its own). Targets: the vocabulary words of a clip's texts that
    occur in at most ``max_clip_fraction`` of the clips; words that nearly every clip's
    text has ("the", "person", "now") tell no clip from another."""
    tokens = {
        clip: {t for text in items for t in word_tokens(tokenizer, text)}
        for clip, items in texts.items()
    }
    if vocabulary is None:
        vocabulary = sorted(set().union(*tokens.values()))
    vocabulary = tuple(vocabulary)
    if not vocabulary:
        raise ValueError("word grounding found no words in the clips' texts")
    position = {token: index for index, token in enumerate(vocabulary)}
    clips_with = {t: sum(t in ids for ids in tokens.values()) for t in vocabulary}
    limit = max_clip_fraction * len(tokens)
    targets = {
        clip: tuple(sorted(position[t] for t in ids if t in position and clips_with[t] <= limit))
        for clip, ids in tokens.items()
    }
    return WordGrounding(vocabulary, targets)


def grounding_loss(log_probs: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """log_probs (B, N, K) -> mean over the videos' target words of -log p, where p is the
    probability of the video token that gives the word its highest probability.

    Taking the best token (not the mean over tokens) lets each word claim one token, so
    the tokens spread over the clip's words instead of all naming the commonest one.
    Videos without targets do not count; with none at all the loss is 0 (and still has a
    gradient graph, so every process of a data-parallel run steps alike)."""
    best = log_probs.max(dim=1).values  # (B, K)
    picked = [best[row, list(words)] for row, words in enumerate(targets) if words]
    if not picked:
        return log_probs.sum() * 0.0
    return -torch.cat(picked).mean()
