"""Which of two videos each part of a comparison sentence speaks of.

Written comparisons name the videos ("Video 1 uses a spoon, while Video 2 uses a
whisk"; "the reference ...", "the user ...") or use the annotators' order "<the
candidate's> instead of <the reference's>". :func:`word_sides` gives each word of a
text the video it is said of: the nearest role marker before it in its clause; after
"instead of", the other video than the one before it; with no marker in the clause,
"instead of" alone splits candidate (before) from reference (after); otherwise none.
Both the SynthKitchen QA truth checker and the writer's reply checks use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REFERENCE, CANDIDATE = "reference", "candidate"
OTHER = {REFERENCE: CANDIDATE, CANDIDATE: REFERENCE}

_REFERENCE_MARKERS = (
    ("video", "1"),
    ("video", "one"),
    ("first", "video"),
    ("first", "clip"),
    ("the", "first"),
    ("reference",),
)
_CANDIDATE_MARKERS = (
    ("video", "2"),
    ("video", "two"),
    ("second", "video"),
    ("second", "clip"),
    ("the", "second"),
    ("candidate",),
    ("user",),
)
_CLAUSE_BREAKS = re.compile(r"[.;:!?]|,|\bwhile\b|\bwhereas\b|\bbut\b", re.I)
_INSTEAD = ("instead", "of")


def text_words(text: str) -> list[str]:
    """Lower-case words and numbers of ``text``, in order."""
    return re.findall(r"[a-z0-9]+", text.lower())


def clauses(text: str) -> list[list[str]]:
    """The words of each clause of ``text`` (split at punctuation, "while", "but"...)."""
    return [text_words(clause) for clause in _CLAUSE_BREAKS.split(text)]


def word_sides(words: Sequence[str]) -> list[str | None]:
    """For each word of one clause, the video it is said of (REFERENCE, CANDIDATE or
    None)."""
    roles = _role_positions(words)
    instead = next((i for i in range(len(words) - 1) if tuple(words[i : i + 2]) == _INSTEAD), None)
    return [_side(position, roles, instead) for position in range(len(words))]


def _side(start: int, roles: list[tuple[int, str]], instead: int | None) -> str | None:
    before = [role for at, role in roles if at < start]
    if instead is None or start < instead:
        return before[-1] if before else (CANDIDATE if instead is not None else None)
    after = [role for at, role in roles if instead < at < start]
    if after:
        return after[-1]
    first = [role for at, role in roles if at < instead]
    return OTHER[first[-1]] if first else REFERENCE


def _role_positions(words: Sequence[str]) -> list[tuple[int, str]]:
    found = set()
    for markers, role in ((_REFERENCE_MARKERS, REFERENCE), (_CANDIDATE_MARKERS, CANDIDATE)):
        for marker in markers:
            n = len(marker)
            found |= {
                (at, role)
                for at in range(len(words) - n + 1)
                if tuple(words[at : at + n]) == marker
            }
    return sorted(found)
