"""How true the written QA are, where the clips' ground truth is known (SynthKitchen).

Every QA of ``qa_raw.jsonl`` is checked against both clips' attributes
(:func:`stepdiff.synthkitchen.qa_truth.check_qa`: supported, contradicted or
uncheckable), before the filter and after it (the QA kept in ``qa.jsonl``), and the
filter is scored as a detector of contradicted QA: precision (of the QA it dropped, the
share contradicted) and recall (of the contradicted QA, the share it dropped). Also per
category and the role swaps (a video given the other video's value).

Also, for any clips: replies with fewer QA than asked (a truncated reply, or a model
that stopped early), near-identical QA within one reply, and QA whose answer gives a
video what only the other video's description has (swapped roles).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepdiff.datagen.filtering import swapped_words, words
from stepdiff.datagen.qa import FOLLOW_UP_MARK

QUESTIONS_ASKED = 3
# Two QA of one reply whose word sets overlap this much say the same thing.
NEAR_DUPLICATE_JACCARD = 0.8


def reply_checks(
    raw: list[dict[str, Any]], descriptions: dict[str, str] | None = None
) -> dict[str, int]:
    """Counts over parsed replies: fewer QA than asked, near-identical QA pairs, and (with
    the clips' descriptions) QA that say a video has what only the other one has."""
    parsed = [r for r in raw if not r["error"]]
    short = sum(1 for r in parsed if len(r["qa"]) < QUESTIONS_ASKED)
    swapped_qa = swapped_replies = 0
    if descriptions is not None:
        for record in parsed:
            first, second = (
                descriptions.get(record["reference"]),
                descriptions.get(record["candidate"]),
            )
            if first is None or second is None:
                continue
            hits = [bool(swapped_words(qa["answer"], first, second)) for qa in record["qa"]]
            swapped_qa += sum(hits)
            swapped_replies += any(hits)
    duplicates = 0
    for record in parsed:
        # Question and answer together: "the type of cleaver used?" and "the type of
        # plate used?" share most words but ask different things.
        questions = [set(words(f"{qa['question']} {qa['answer']}")) for qa in record["qa"]]
        for i, first in enumerate(questions):
            for second in questions[i + 1 :]:
                union = first | second
                if union and len(first & second) / len(union) >= NEAR_DUPLICATE_JACCARD:
                    duplicates += 1
    followed = [r for r in raw if FOLLOW_UP_MARK in r["raw"]]
    counts = {
        "replies_given_the_follow_up": len(followed),
        "completed_by_the_follow_up": sum(1 for r in followed if len(r["qa"]) >= QUESTIONS_ASKED),
        "replies_with_fewer_qa": short,
        "near_duplicate_qa_pairs": duplicates,
    }
    if descriptions is not None:
        counts |= {
            "qa_with_swapped_roles": swapped_qa,
            "replies_with_swapped_roles": swapped_replies,
        }
    return counts


def load_synthkitchen_clips(path: str | Path | None) -> dict[str, Any] | None:
    """The ClipSpecs of a SynthKitchen ``clips.jsonl`` by clip id; None when ``path`` is
    missing or is not SynthKitchen's (other clips carry no ground truth to check)."""
    from stepdiff.synthkitchen.world import ClipSpec

    if path is None or not Path(path).is_file():
        return None
    clips = {}
    try:
        with Path(path).open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    spec = ClipSpec.from_dict(json.loads(line))
                    clips[spec.clip_id] = spec
    except (ValueError, TypeError, KeyError):
        return None
    return clips


def truth_stats(
    raw: list[dict[str, Any]],
    kept: list[dict[str, Any]] | None,
    clips: dict[str, Any],
    classify: Callable[[str], str],
    dropped_qa: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Verdict counts and rates before and after the filter, the filter's precision and
    recall on contradicted QA, per category (``classify``: question -> category), role
    swaps, and (with the filter's ``qa_dropped.jsonl`` records) the verdicts of the QA
    each filter reason dropped: which check drops true QA and which drops false ones."""
    from stepdiff.synthkitchen.qa_truth import CONTRADICTED, VERDICTS, check_qa

    kept_keys = (
        None if kept is None else Counter((q["pair_id"], q["question"], q["answer"]) for q in kept)
    )
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    per_category: dict[str, Counter[str]] = {}
    dropped_contradicted = dropped = swaps = 0
    reasons: Counter[str] = Counter()
    dropped_reason = {
        (d["pair_id"], d["question"], d["answer"]): d["reason"].removeprefix("dropped: ")
        for d in dropped_qa or []
    }
    per_reason: dict[str, Counter[str]] = {}
    for record in raw:
        reference, candidate = clips.get(record["reference"]), clips.get(record["candidate"])
        if reference is None or candidate is None:
            continue
        for qa in record["qa"]:
            truth = check_qa(qa["question"], qa["answer"], reference, candidate)
            before[truth.verdict] += 1
            category = classify(qa["question"])
            per_category.setdefault(category, Counter())[truth.verdict] += 1
            contradicted = truth.verdict == CONTRADICTED
            if contradicted:
                reasons[truth.reason.split(" '")[0]] += 1
                swaps += truth.reason.endswith("the other video's")
            if kept_keys is None:
                continue
            key = (record["pair_id"], qa["question"], qa["answer"])
            if kept_keys[key] > 0:
                kept_keys[key] -= 1
                after[truth.verdict] += 1
            else:
                dropped += 1
                dropped_contradicted += contradicted
                reason = dropped_reason.get(key)
                if reason is not None:
                    per_reason.setdefault(reason, Counter())[truth.verdict] += 1

    def summary(counts: Counter[str]) -> dict[str, Any]:
        total = sum(counts.values())
        rate = round(counts[CONTRADICTED] / total, 4) if total else None
        return {"qa": total, **{v: counts[v] for v in VERDICTS}, "contradicted_rate": rate}

    stats: dict[str, Any] = {
        "before_filter": summary(before),
        "role_swaps": swaps,
        "contradicted_reasons": dict(reasons.most_common()),
        "contradicted_rate_per_category": {
            c: summary(counts)["contradicted_rate"] for c, counts in sorted(per_category.items())
        },
    }
    if kept_keys is not None:
        stats["after_filter"] = summary(after)
        stats["filter_on_contradicted"] = {
            "precision": round(dropped_contradicted / dropped, 4) if dropped else None,
            "recall": (
                round(dropped_contradicted / before[CONTRADICTED], 4)
                if before[CONTRADICTED]
                else None
            ),
        }
        if per_reason:
            stats["dropped_by_reason"] = {
                reason: {v: counts[v] for v in VERDICTS}
                for reason, counts in sorted(per_reason.items())
            }
    return stats


def description_truth(descriptions: list[dict[str, Any]], clips: dict[str, Any]) -> dict[str, int]:
    """How many written descriptions name a value their own clip does not have."""
    from stepdiff.synthkitchen.qa_truth import mentions

    checked = wrong = 0
    for record in descriptions:
        clip = clips.get(record["clip_id"])
        if clip is None or not record.get("description"):
            continue
        checked += 1
        wrong += any(
            str(getattr(clip, m.attribute)) != m.value for m in mentions(record["description"])
        )
    return {"descriptions_checked": checked, "descriptions_naming_a_false_value": wrong}
