"""Whether a written comparison QA is true of its pair of SynthKitchen clips.

A writer LLM reads two clips' descriptions and writes question-answer pairs about their
differences; SynthKitchen knows both clips' attributes, so each answer can be checked
against them instead of trusted. A QA is

- **contradicted** when its answer names a value that neither clip has (a tool in
  neither video), gives one video a value that only the other one has (the roles
  swapped), or answers a "same ...?" question yes where the two clips differ (or no
  where they are the same);
- **supported** when it names values of the pair's attributes, each on a video that has
  it (or on no video in particular), or answers a "same ...?" question rightly;
- **uncheckable** when it names no attribute value and is no yes/no about one.

Which video a value is said of: :func:`stepdiff.data.roles.word_sides` (role markers
such as "Video 1" / "the user", and the annotators' order "<candidate's> instead of
<reference's>"). Values are matched as whole
words, tolerating inflection (:mod:`stepdiff.synthkitchen.truth`); a longer name wins
over a shorter one inside it ("serving bowl" is a plate, not the vessel "bowl").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stepdiff.data.roles import clauses, text_words, word_sides
from stepdiff.synthkitchen.differences import compare_category
from stepdiff.synthkitchen.truth import find_phrase
from stepdiff.synthkitchen.world import (
    FINAL_STATE_PHRASES,
    GARNISH_PHRASES,
    INGREDIENTS,
    KEYSTEPS,
    MOTION_PHRASES,
    PLATES,
    SPEED_PHRASES,
    TOOLS,
    VESSEL_MATERIALS,
    ClipSpec,
)

SUPPORTED, CONTRADICTED, UNCHECKABLE = "supported", "contradicted", "uncheckable"
VERDICTS = (SUPPORTED, CONTRADICTED, UNCHECKABLE)

# Names too common elsewhere to count as naming the attribute: "set the pan", "the whole
# time", "fresh herbs" (the garnish, not the doneness), "medium heat", "a wooden spoon"
# (a tool colour, not the cutting board's material).
_AMBIGUOUS = {
    "doneness": frozenset({"set", "fresh"}),
    "final_state": frozenset({"whole"}),
    "speed": frozenset({"medium"}),
    "vessel_material": frozenset({"wooden"}),
}


def _vocabulary() -> dict[str, dict[str, tuple[str, ...]]]:
    """attribute -> value -> the phrases that name it."""
    doneness = {d.name for k in KEYSTEPS.values() for d in k.doneness}
    final_states = {s for k in KEYSTEPS.values() for s in k.final_states}
    materials = {m for ms in VESSEL_MATERIALS.values() for m in ms}
    table: dict[str, dict[str, tuple[str, ...]]] = {
        "ingredient": {n: (n, i.singular, i.plural) for n, i in INGREDIENTS.items()},
        "tool": {t: (t, TOOLS[t]) for t in TOOLS},
        "vessel": {v: (v,) for v in VESSEL_MATERIALS},
        "vessel_material": {m: (m,) for m in materials},
        "motion": {m: (m, p) for m, p in MOTION_PHRASES.items()},
        "speed": {s: (s, p) for s, p in SPEED_PHRASES.items()},
        "doneness": {d: (d,) for d in doneness},
        "final_state": {s: (s, FINAL_STATE_PHRASES.get(s, s)) for s in final_states},
        "plate": {p: (p,) for p in PLATES},
        "garnish": {g: (g, p) for g, p in GARNISH_PHRASES.items()},
    }
    return {
        attribute: {
            value: tuple(dict.fromkeys(f for f in forms if f not in _AMBIGUOUS.get(attribute, ())))
            for value, forms in values.items()
        }
        for attribute, values in table.items()
    }


VOCABULARY = _vocabulary()
# Phrases whose words name no attribute value: the seasoning step's "salt and pepper" is
# not the ingredient peppers.
_NOT_VALUES = (("salt", "and", "pepper"),)
_SEASONING_LIST = re.compile(r"\bsalt\s*,\s*(?:and\s+)?pepper\b", re.IGNORECASE)
# Every (phrase words, attribute, value), longest phrase first, so that a longer name
# claims its words before a shorter one inside it.
_PHRASES = sorted(
    (
        (tuple(text_words(form)), attribute, value)
        for attribute, values in VOCABULARY.items()
        for value, forms in values.items()
        for form in forms
    ),
    key=lambda entry: -len(entry[0]),
)

# "same <keyword>?" -> the attribute (or category) whose sameness the question asks about.
_SAME_ATTRIBUTES = (
    ("ingredient", "ingredient"),
    ("tool", "tool"),
    ("utensil", "tool"),
    ("vessel", "vessel"),
    ("pan", "vessel"),
    ("pot", "vessel"),
    ("motion", "motion"),
    ("speed", "speed"),
    ("pace", "speed"),
    ("garnish", "garnish"),
    ("plate", "plate"),
)
_SAME_CATEGORIES = (
    ("equipment", "Tools/Equipment"),
    ("technique", "Technique"),
    ("action", "Actions"),
    ("order", "Actions"),
    ("look", "Visuals"),
    ("visual", "Visuals"),
    ("serv", "Serving / Presentation"),
    ("present", "Serving / Presentation"),
)


@dataclass(frozen=True)
class Mention:
    attribute: str
    value: str
    side: str | None  # "reference", "candidate" or None (no video in particular)


@dataclass(frozen=True)
class QATruth:
    verdict: str  # one of VERDICTS
    reason: str  # why, in a few words ("" when supported)


def mentions(text: str) -> list[Mention]:
    """The attribute values ``text`` names, each with the video it is said of."""
    found: list[Mention] = []
    # "salt, pepper, and lemon juice": the seasoning still, though a comma splits it.
    text = _SEASONING_LIST.sub("salt and pepper", text)
    for words in clauses(text):
        taken = [False] * len(words)
        for phrase in _NOT_VALUES:
            for start in _all_positions(words, phrase):
                taken[start : start + len(phrase)] = [True] * len(phrase)
        sides = word_sides(words)
        hits: list[tuple[int, str, str]] = []
        for phrase, attribute, value in _PHRASES:
            for start in _all_positions(words, phrase, strict=attribute == "tool"):
                span = range(start, start + len(phrase))
                if any(taken[i] for i in span) or _is_unit(words, attribute, span):
                    continue
                for i in span:
                    taken[i] = True
                hits.append((start, attribute, value))
        found += [
            Mention(attribute, value, sides[start]) for start, attribute, value in sorted(hits)
        ]
    return found


def _is_unit(words: Sequence[str], attribute: str, span: range) -> bool:
    """A tool name used as a unit of quantity ("two ladles of batter")."""
    return attribute == "tool" and span.stop < len(words) and words[span.stop] == "of"


def check_qa(question: str, answer: str, reference: ClipSpec, candidate: ClipSpec) -> QATruth:
    """The verdict on one QA about (reference = Video 1, candidate = Video 2)."""
    clips = {"reference": reference, "candidate": candidate}
    named = mentions(answer)
    for mention in named:
        values = {side: str(getattr(clip, mention.attribute)) for side, clip in clips.items()}
        if mention.value not in values.values():
            return QATruth(
                CONTRADICTED, f"names {mention.attribute} {mention.value!r}, in neither video"
            )
        if mention.side is not None and values[mention.side] != mention.value:
            return QATruth(
                CONTRADICTED,
                f"gives the {mention.side} {mention.attribute} {mention.value!r}, the other "
                "video's",
            )
    same = _same_question_truth(question, reference, candidate)
    said = _yes_or_no(answer)
    if same is not None and said is not None:
        if said != same:
            return QATruth(
                CONTRADICTED,
                f"answers {'yes' if said else 'no'} to a sameness "
                f"that is {'true' if same else 'false'}",
            )
        return QATruth(SUPPORTED, "")
    if named:
        return QATruth(SUPPORTED, "")
    return QATruth(UNCHECKABLE, "names no attribute value")


def _same_question_truth(question: str, reference: ClipSpec, candidate: ClipSpec) -> bool | None:
    """For a "same ...?" question, whether the two clips are the same in what it asks
    about; None for any other question."""
    lowered = question.lower()
    if "same" not in lowered and "different" not in lowered:
        return None
    words = text_words(question)
    for keyword, attribute in _SAME_ATTRIBUTES:
        if keyword in words or f"{keyword}s" in words:  # "pan", not "pancakes"
            same = getattr(reference, attribute) == getattr(candidate, attribute)
            return same if "same" in lowered else not same
    for keyword, category in _SAME_CATEGORIES:
        if any(w.startswith(keyword) for w in words):
            same = reference.keystep == candidate.keystep and not (
                compare_category(reference, candidate, category).differences
            )
            return same if "same" in lowered else not same
    return None


def _yes_or_no(answer: str) -> bool | None:
    words = text_words(answer)
    if not words:
        return None
    return {"yes": True, "no": False}.get(words[0])


def _all_positions(words: Sequence[str], phrase: Sequence[str], strict: bool = False) -> list[int]:
    """Where ``phrase`` occurs in ``words``: with inflections, or (``strict``, for tools,
    whose names are also verbs: "whisked", "whisking") as written or plural only."""
    n = len(phrase)
    if strict:
        return [
            start
            for start in range(len(words) - n + 1)
            if list(words[start : start + n - 1]) == list(phrase[:-1])
            and words[start + n - 1] in (phrase[-1], f"{phrase[-1]}s", f"{phrase[-1]}es")
            and not (phrase[-1] in _VERB_TOOLS and _is_verb(words, start + n - 1, phrase[-1]))
        ]
    positions, offset = [], 0
    while offset <= len(words) - n:
        at = find_phrase(words[offset:], phrase)
        if at is None:
            break
        positions.append(offset + at)
        offset += at + 1
    return positions


# Tool names that are also a keystep's verb: "the person whisks" is no tool.
_VERB_TOOLS = frozenset(k for k in KEYSTEPS if k in TOOLS)


def _is_verb(words: Sequence[str], at: int, name: str) -> bool:
    """Whether ``words[at]``, a form of the tool ``name``, is its keystep's verb:
    inflected ("whisks"), after "to" ("chopsticks to whisk"), or before an object
    pronoun ("whisk it quickly")."""
    return (
        words[at] != name
        or (at > 0 and words[at - 1] == "to")
        or (at + 1 < len(words) and words[at + 1] in ("it", "them"))
    )
