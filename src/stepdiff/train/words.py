"""The words head's vocabulary: the words of the training texts, one LLM token each."""

from __future__ import annotations

import re
from collections.abc import Sequence

from stepdiff.train.data import TrainingRecord


def record_texts(records: Sequence[TrainingRecord]) -> list[str]:
    """Texts about single clips (single-video answers, interleaved narrations) or, when
    there are none, the pair answers."""
    texts = []
    for record in records:
        if record.kind == "single_video":
            texts.append(record.answer)
        elif record.kind == "interleaved":
            texts.extend(record.narrations)
    return texts or [record.answer for record in records]


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


def word_vocabulary(tokenizer, records: Sequence[TrainingRecord]) -> list[int]:
    """The word tokens (:func:`word_tokens`) of every training text, sorted."""
    vocabulary = {t for text in record_texts(records) for t in word_tokens(tokenizer, text)}
    if not vocabulary:
        raise ValueError("the training texts hold no words for the words head")
    return sorted(vocabulary)
