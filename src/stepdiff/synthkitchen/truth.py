"""Whether a generated DiffCap caption names the true difference of its pair.

CIDEr-D and BLEU reward a caption for sharing n-grams with the reference captions, so
"The person uses a spoon instead of a knife" scores well against "The person uses a
whisk instead of a spoon" although it names a tool that is in neither clip. SynthKitchen
knows each clip's attributes, so a caption can be checked against the truth instead:
it *names the difference* when it mentions every value that differs between the two
clips in the category's main difference (e.g. "whisk" and "spoon"), and names it *in
roles* when the candidate's values come before "instead of" and the reference's after
it, the annotators' order.

Values are matched as whole words, tolerating inflection ("eggs" for "egg", "seasoning"
for "season") and hyphens ("back and forth" for "back-and-forth"). A value that is an
absence (no garnish) need not be named. For the Actions category, whose facts are about
sub-actions (which one is skipped, which comes first), naming both sub-actions counts,
in either order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stepdiff.data.roles import text_words
from stepdiff.errors import DataFormatError
from stepdiff.synthkitchen.differences import Difference, compare_category
from stepdiff.synthkitchen.world import (
    FINAL_STATE_PHRASES,
    GARNISH_PHRASES,
    INGREDIENTS,
    KEYSTEPS,
    MOTION_PHRASES,
    NUMBER_WORDS,
    SPEED_PHRASES,
    TOOLS,
    ClipSpec,
)

INSTEAD = "instead of"
_SUFFIXES = ("", "s", "es", "ing", "ed", "d")


@dataclass(frozen=True)
class Slot:
    """One value a caption must name: any of ``forms``; ``side`` says where in the
    annotators' order it belongs ("candidate", "reference", or None: anywhere)."""

    forms: tuple[str, ...]
    side: str | None


@dataclass(frozen=True)
class CaptionTruth:
    names: bool  # every differing value is named
    in_roles: bool  # ... and each one on its own side of "instead of"


def value_forms(key: str, value: Any, spec: ClipSpec) -> tuple[str, ...]:
    """Ways a caption may name attribute ``key`` = ``value`` of ``spec`` (lower case);
    empty for an absence, which need not be named."""
    if key == "garnish":
        return () if value == "none" else (value, GARNISH_PHRASES[value])
    if key == "quantity":
        return (NUMBER_WORDS[value], str(value))
    if key == "ingredient":
        info = INGREDIENTS[value]
        return (value, info.singular, info.plural)
    if key == "tool":
        return (value, TOOLS[value])
    phrases = {"motion": MOTION_PHRASES, "speed": SPEED_PHRASES, "final_state": FINAL_STATE_PHRASES}
    extra = phrases.get(key, {}).get(value)
    return (str(value),) if extra is None else (str(value), extra)


def sub_action_forms(token: str, spec: ClipSpec) -> tuple[str, ...]:
    """Ways a caption may name a sub-action (see ``differences._sub_action``)."""
    if token == "oil":
        return ("oil",)
    if token == "season":
        return ("season", "salt")
    if token == "liquid":
        return ("liquid", KEYSTEPS[spec.keystep].liquid)
    if token == "add":
        return ("add", "ingredient", INGREDIENTS[spec.ingredient].plural)
    return tuple(KEYSTEPS[spec.keystep].verb)  # "work": the keystep's own verb


def difference_slots(difference: Difference, reference: ClipSpec) -> list[Slot]:
    """The values ``difference`` asserts that differ between its two clips."""
    candidate_facts = dict(difference.candidate_facts)
    slots: list[Slot] = []
    for key, ref_value in difference.reference_facts:
        cand_value = candidate_facts.get(key)
        if cand_value == ref_value:
            continue  # shared context ("the onions"), not the difference
        kind, _, rest = key.partition(":")
        if kind in ("before", "performs"):
            slots += [Slot(sub_action_forms(t, reference), None) for t in rest.split(":")]
            continue
        for side, value in (("reference", ref_value), ("candidate", cand_value)):
            forms = value_forms(key, value, reference)
            if forms:
                slots.append(Slot(forms, side))
    return _unique(slots)


def judge_caption(caption: str, slots: Sequence[Slot]) -> CaptionTruth:
    """Whether ``caption`` names every slot, and each on its side of "instead of"."""
    words = text_words(caption)
    split = find_phrase(words, text_words(INSTEAD))
    before, after = (words, []) if split is None else (words[:split], words[split + 2 :])
    names = all(any(find_phrase(words, text_words(f)) is not None for f in s.forms) for s in slots)
    if not names or split is None:
        return CaptionTruth(names, False)
    part = {"candidate": before, "reference": after, None: words}
    in_roles = all(
        any(find_phrase(part[s.side], text_words(f)) is not None for f in s.forms) for s in slots
    )
    return CaptionTruth(True, in_roles)


def judge_diffcap(
    items: Iterable[Any], captions: Sequence[str], clips: Mapping[str, ClipSpec]
) -> list[CaptionTruth]:
    """One judgement per DiffCap item (``reference``, ``candidate``, ``category``) and
    its generated caption. Raises KeyError naming a clip missing from ``clips``."""
    judged = []
    for item, caption in zip(items, captions, strict=True):
        reference, candidate = clips[item.reference], clips[item.candidate]
        main = compare_category(reference, candidate, item.category).main
        if main is None:  # no difference in the category: nothing to name
            judged.append(CaptionTruth(True, True))
            continue
        judged.append(judge_caption(caption, difference_slots(main, reference)))
    return judged


def caption_judge_beside(
    gt_path: str | Path,
) -> Callable[[Sequence[Any], Sequence[str]], dict[str, np.ndarray]] | None:
    """For a DiffCap file of a built SynthKitchen benchmark (its ``clips.jsonl`` beside
    it), a judge giving each caption's "names-difference" and "names-difference-in-roles"
    (0 or 1); None for any other file."""
    from stepdiff.synthkitchen.builder import load_clips

    folder = Path(gt_path).parent
    if not (folder / "clips.jsonl").is_file():
        return None
    clips = load_clips(folder)

    def judge(items: Sequence[Any], captions: Sequence[str]) -> dict[str, np.ndarray]:
        try:
            judged = judge_diffcap(items, captions, clips)
        except KeyError as error:
            raise DataFormatError(
                f"{gt_path}: clip {error.args[0]!r} is not in {folder / 'clips.jsonl'}"
            ) from None
        return {
            "names-difference": np.array([j.names for j in judged], dtype=np.float64),
            "names-difference-in-roles": np.array([j.in_roles for j in judged], np.float64),
        }

    return judge


def _same_word(word: str, form: str) -> bool:
    """``word`` is ``form`` or an inflection of it ("slicing" for "slice")."""
    if form.endswith("e") and word == form[:-1] + "ing":
        return True
    return any(word == form + suffix for suffix in _SUFFIXES) or (
        form.endswith("s") and word == form[:-1]  # "egg" for "eggs"
    )


def find_phrase(words: Sequence[str], phrase: Sequence[str]) -> int | None:
    """Index where ``phrase`` starts in ``words`` (inflections allowed), else None."""
    n = len(phrase)
    for start in range(len(words) - n + 1):
        if all(_same_word(w, f) for w, f in zip(words[start : start + n], phrase, strict=True)):
            return start
    return None


def _unique(slots: list[Slot]) -> list[Slot]:
    seen: set[tuple[tuple[str, ...], str | None]] = set()
    unique = []
    for slot in slots:
        if (slot.forms, slot.side) not in seen:
            seen.add((slot.forms, slot.side))
            unique.append(slot)
    return unique
