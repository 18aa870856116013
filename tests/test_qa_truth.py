"""The QA truth checker on hand-built SynthKitchen pairs: every verdict and its reason."""

from __future__ import annotations

import dataclasses

import pytest

from stepdiff.demo import REFERENCE_SPEC
from stepdiff.synthkitchen.qa_truth import CONTRADICTED, SUPPORTED, UNCHECKABLE, check_qa, mentions

# The demo's reference clip: two yellow peppers stir-fried in circles in a cast-iron pan
# with a wooden spoon, served on a round plate with herbs.
REFERENCE = dataclasses.replace(REFERENCE_SPEC, video_uid="ref")
# The same step with a spatula in a wok, moved back and forth, served in a serving bowl.
CANDIDATE = dataclasses.replace(
    REFERENCE,
    video_uid="cand",
    tool="spatula",
    vessel="wok",
    vessel_material="nonstick",
    motion="back-and-forth",
    plate="serving bowl",
)


@pytest.mark.parametrize(
    ("question", "answer", "verdict", "reason"),
    [
        # Each value on the video that has it, by role markers or by "instead of".
        (
            "What differs?",
            "The first video uses a wooden spoon, while the second uses a spatula.",
            SUPPORTED,
            "",
        ),
        ("What differs?", "The person uses a spatula instead of a spoon.", SUPPORTED, ""),
        ("What differs?", "Video 2 stirs back and forth in a wok.", SUPPORTED, ""),
        # A marker names the first side; "instead of" gives the other one to the rest.
        ("What differs?", "The candidate stirs in a wok instead of in a pan.", SUPPORTED, ""),
        ("What differs?", "Video 1 stirs in a pan instead of in a wok.", SUPPORTED, ""),
        (
            "What differs?",
            "Video 1 stirs in a wok instead of in a pan.",
            CONTRADICTED,
            "gives the reference vessel 'wok', the other video's",
        ),
        # A tool's name as a verb or a unit names no tool.
        (
            "What differs?",
            "The food is whisked, two ladles of it.",
            UNCHECKABLE,
            "names no attribute value",
        ),
        # The roles swapped.
        (
            "What differs?",
            "Video 1 uses a spatula and Video 2 uses a spoon.",
            CONTRADICTED,
            "gives the reference tool 'spatula', the other video's",
        ),
        (
            "What differs?",
            "The person uses a spoon instead of a spatula.",
            CONTRADICTED,
            "gives the candidate tool 'spoon', the other video's",
        ),
        # A value neither clip has.
        (
            "What differs?",
            "The second video uses a whisk.",
            CONTRADICTED,
            "names tool 'whisk', in neither video",
        ),
        (
            "What is served?",
            "Both serve the peppers on a slate.",
            CONTRADICTED,
            "names plate 'slate', in neither video",
        ),
        # "serving bowl" is the candidate's plate, not the vessel "bowl".
        ("What is served?", "Video 2 serves them in a serving bowl.", SUPPORTED, ""),
        # "Same ...?" questions, answered rightly and wrongly.
        ("Did both videos use the same tool?", "No.", SUPPORTED, ""),
        (
            "Did both videos use the same tool?",
            "Yes, they did.",
            CONTRADICTED,
            "answers yes to a sameness that is false",
        ),
        ("Do both videos use the same ingredients?", "Yes.", SUPPORTED, ""),
        (
            "Is the technique the same in both videos?",
            "Yes.",
            CONTRADICTED,
            "answers yes to a sameness that is false",
        ),
        (
            "Does the food look the same in both videos?",
            "No.",
            CONTRADICTED,
            "answers no to a sameness that is true",
        ),
        # Nothing to check.
        (
            "How do the videos differ?",
            "They differ in several ways.",
            UNCHECKABLE,
            "names no attribute value",
        ),
    ],
)
def test_each_verdict(question, answer, verdict, reason):
    truth = check_qa(question, answer, REFERENCE, CANDIDATE)
    assert (truth.verdict, truth.reason) == (verdict, reason)


def test_common_words_do_not_count_as_values():
    # "fresh herbs" is the garnish (not the doneness "fresh"); "medium heat" no speed;
    # "a wooden spoon" a tool colour (not the cutting board's material); "pancakes" is
    # the ingredient, with no vessel "pan" in it.
    found = mentions(
        "Both add fresh herbs over medium heat with a wooden spoon; no pancakes. "
        "They season with salt and pepper."  # the seasoning, not the ingredient peppers
        " Video 2 uses salt, pepper, and lemon juice."  # the seasoning still
        " Video 1 uses chopsticks to whisk, video 2 whisk it."  # the verb, no tool
    )
    assert [(m.attribute, m.value) for m in found] == [
        ("garnish", "herbs"),
        ("tool", "spoon"),
        ("ingredient", "pancakes"),
        ("tool", "chopsticks"),
    ]


def test_truth_stats_score_the_filter_as_a_detector_of_contradicted_qa():
    from stepdiff.datagen.truth_stats import reply_checks, truth_stats

    qa = [
        {"question": "What differs?", "answer": "Video 2 uses a spatula."},  # supported
        {"question": "What differs?", "answer": "Video 2 uses a whisk."},  # contradicted
        {"question": "What differs?", "answer": "Video 1 uses a spatula."},  # a swap
        {"question": "What differs?!", "answer": "They differ."},  # uncheckable
    ]
    raw = [{"pair_id": "p", "reference": "r", "candidate": "c", "qa": qa, "error": None, "raw": ""}]
    # The filter kept the first and the swap: it dropped 2, of which 1 is contradicted.
    kept = [{"pair_id": "p", **qa[0]}, {"pair_id": "p", **qa[2]}]
    stats = truth_stats(raw, kept, {"r": REFERENCE, "c": CANDIDATE}, lambda q: "Other")
    assert stats["before_filter"] == {
        "qa": 4,
        "supported": 1,
        "contradicted": 2,
        "uncheckable": 1,
        "contradicted_rate": 0.5,
    }
    assert stats["after_filter"]["contradicted"] == 1 and stats["after_filter"]["qa"] == 2
    assert stats["filter_on_contradicted"] == {"precision": 0.5, "recall": 0.5}
    assert stats["role_swaps"] == 1
    assert "dropped_by_reason" not in stats  # without the filter's list of dropped QA
    dropped = [
        {"pair_id": "p", "reason": "dropped: ungrounded", **qa[1]},
        {"pair_id": "p", "reason": "dropped: malformed", **qa[3]},
    ]
    clips = {"r": REFERENCE, "c": CANDIDATE}
    by_reason = truth_stats(raw, kept, clips, lambda q: "Other", dropped)["dropped_by_reason"]
    assert by_reason == {
        "malformed": {"supported": 0, "contradicted": 0, "uncheckable": 1},
        "ungrounded": {"supported": 0, "contradicted": 1, "uncheckable": 0},
    }
    from stepdiff.datagen.stats import stats_markdown

    markdown = stats_markdown({"out_dir": "x", "truth": {"dropped_by_reason": by_reason}})
    assert "| reason | contradicted | supported | uncheckable |" in markdown
    assert "| ungrounded | 1 | 0 | 0 |" in markdown
    # Same questions, different answers: no near-identical QA (a repeated QA would be).
    assert reply_checks(raw) == {
        "replies_given_the_follow_up": 0,
        "completed_by_the_follow_up": 0,
        "replies_with_fewer_qa": 0,
        "near_duplicate_qa_pairs": 0,
    }
    twice = [{**raw[0], "qa": [qa[0], dict(qa[0])]}]
    assert reply_checks(twice)["near_duplicate_qa_pairs"] == 1


def test_a_word_said_of_the_wrong_video_is_a_swap():
    from stepdiff.datagen.truth_stats import reply_checks, swapped_words

    first = "The person stirs peppers in a pan with a spoon."
    second = "The person whisks eggs in a bowl with a whisk."
    assert swapped_words("Video 1 whisks eggs, while Video 2 stirs.", first, second) == [
        "whisks",
        "eggs",
        "stirs",
    ]
    assert swapped_words("Video 2 whisks eggs instead of stirring peppers.", first, second) == []
    assert swapped_words("Both videos use a person.", first, second) == []  # no side
    qa = [
        {"question": "Q1?", "answer": "Video 1 uses a whisk."},
        {"question": "Q2?", "answer": "Video 2 uses a whisk."},
    ]
    raw = [{"pair_id": "p", "reference": "a", "candidate": "b", "qa": qa, "error": None, "raw": ""}]
    checks = reply_checks(raw, {"a": first, "b": second})
    assert checks["qa_with_swapped_roles"] == 1 and checks["replies_with_swapped_roles"] == 1
    assert checks["replies_with_fewer_qa"] == 1  # 2 QA where 3 were asked


def test_a_description_that_names_a_value_its_clip_lacks_is_counted():
    from stepdiff.datagen.truth_stats import description_truth

    descriptions = [
        {"clip_id": "r", "description": "Stirs peppers in a pan with a spoon; salt and pepper."},
        {"clip_id": "c", "description": "Stirs peppers in a pan with a spatula."},  # a wok
        {"clip_id": "c", "description": ""},  # failed: not checked
    ]
    counts = description_truth(descriptions, {"r": REFERENCE, "c": CANDIDATE})
    assert counts == {"descriptions_checked": 2, "descriptions_naming_a_false_value": 1}
