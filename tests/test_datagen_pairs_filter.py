"""Pair selection (keystep, distinct videos, similarity band, per-clip cap) and the QA
filter (each drop reason on hand-written cases), plus question categories."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from stepdiff.datagen.filtering import (
    FilterSettings,
    PairQA,
    content_words,
    judge_dataset,
    judge_pair,
    lemma,
)
from stepdiff.datagen.pairs import DescribedClip, PairSettings, select_pairs
from stepdiff.datagen.stats import OTHER, classify_question
from stepdiff.errors import ConfigError

# --- pairing ---------------------------------------------------------------------------


def _clips(n: int, videos: int, keystep: str = "whisk") -> list[DescribedClip]:
    return [
        DescribedClip(f"v{i % videos}_{i}_{i + 1}", f"v{i % videos}", keystep) for i in range(n)
    ]


def _embeddings(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around a common direction: cosine similarities spread over ~0.3-1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)) * 0.6 + np.eye(16)[0]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_pairs_respect_videos_band_cap_and_are_deterministic():
    clips, vectors = _clips(40, videos=8), _embeddings(40)
    settings = PairSettings(low=0.5, high=0.9, per_clip=3, seed=7)
    pairs = select_pairs(clips, vectors, settings)
    assert pairs, "the band must admit some pairs"
    by_id = {c.clip_id: i for i, c in enumerate(clips)}
    for p in pairs:
        r, c = clips[by_id[p.reference]], clips[by_id[p.candidate]]
        assert r.video_uid != c.video_uid and p.keystep == "whisk"
        assert 0.5 <= p.similarity <= 0.9
        assert p.similarity == pytest.approx(
            float(vectors[by_id[r.clip_id]] @ vectors[by_id[c.clip_id]]), abs=1e-4
        )
        assert p.pair_id == f"{p.reference}|{p.candidate}"
    uses = Counter(c for p in pairs for c in (p.reference, p.candidate))
    assert max(uses.values()) <= 3
    assert len({frozenset((p.reference, p.candidate)) for p in pairs}) == len(pairs)
    # Same seed, shuffled input: same pairs. Another seed: other pairs.
    order = np.random.default_rng(1).permutation(40)
    assert select_pairs([clips[i] for i in order], vectors[order], settings) == pairs
    assert select_pairs(clips, vectors, PairSettings(0.5, 0.9, 3, seed=8)) != pairs
    # The reference is drawn at random, not always the smaller id.
    assert {p.reference < p.candidate for p in pairs} == {True, False}


def test_pairs_exclude_near_duplicates_and_unrelated_clips():
    clips = _clips(4, videos=4)
    same = np.array([1.0, 0.0])
    vectors = np.stack([same, same, [0.0, 1.0], [0.6, 0.8]])  # 0~1 identical, 2 unrelated
    pairs = select_pairs(clips, vectors, PairSettings(low=0.5, high=0.95, per_clip=4))
    assert {frozenset((p.reference, p.candidate)) for p in pairs} == {
        frozenset((clips[0].clip_id, clips[3].clip_id)),
        frozenset((clips[1].clip_id, clips[3].clip_id)),
        frozenset((clips[2].clip_id, clips[3].clip_id)),
    }


def test_pairing_refuses_mixed_keysteps_and_a_bad_band():
    clips = _clips(2, 2) + _clips(2, 2, keystep="flip")
    with pytest.raises(ValueError, match="one keystep"):
        select_pairs(clips, _embeddings(4), PairSettings())
    with pytest.raises(ConfigError, match="low <= high"):
        PairSettings(low=0.9, high=0.5)


# --- filtering -------------------------------------------------------------------------

D1 = (
    "First I add two red onions to the wok. Then I stir them quickly in circles with a "
    "wooden spatula. They look golden now. I serve them on a round plate with herbs."
)
D2 = (
    "First I add two red onions to the pan. Then I stir them slowly back and forth with "
    "black chopsticks. They look charred now. I serve them in a serving bowl with no garnish."
)
GOOD = [
    (
        "What is the main difference in tools between the two videos?",
        "The person uses black chopsticks instead of a wooden spatula",
    ),
    ("Did both videos use the same vessel?", "No, the second video uses a pan instead of a wok."),
    ("How do the onions look at the end?", "Golden in the first video, charred in the second."),
]


def _verdicts(qa: list[tuple[str, str]]) -> list[tuple[str | None, str]]:
    return [(v.reason, v.detail) for v in judge_pair(qa, D1, D2, FilterSettings())]


def test_the_filter_keeps_well_formed_grounded_comparative_qa():
    assert [r for r, _ in _verdicts(GOOD)] == [None, None, None]


@pytest.mark.parametrize(
    ("question", "answer", "reason", "detail"),
    [
        ("", "The wok.", "malformed", "empty"),
        ("Describe the tools used.", "A wok and a pan.", "malformed", "not a question"),
        ("Q1: <question>", "<answer>", "malformed", "placeholder"),
        ("Which?", "The wok and the pan.", "malformed", "too short"),
        ("Which tool differs?", "Spatula.", "malformed", "too short"),
        ("Which tool differs?", " ".join(["word"] * 60), "malformed", "too long"),
        ("What does the person serve the onions on?", "On a round plate.", "single_video", ""),
        (
            "What is the main difference in tools between the two videos?",
            "The person uses a blender and a microwave instead of a toaster",
            "ungrounded",
            "0.00",
        ),
    ],
)
def test_the_filter_drops_each_bad_kind_with_its_reason(question, answer, reason, detail):
    (got_reason, got_detail), *_ = _verdicts([(question, answer)])
    assert got_reason == reason
    assert detail in got_detail


def test_duplicates_within_a_pair_and_across_the_dataset():
    twice = [
        GOOD[0],
        ("what is the MAIN difference in tools between the two videos", "Other tools."),
    ]
    assert _verdicts(twice)[1] == ("duplicate", "question repeated within the pair")
    pairs = [PairQA(f"p{i}", [GOOD[1]], D1, D2) for i in range(4)]
    strict = judge_dataset(pairs, FilterSettings(max_repeats=1, max_share=0))
    assert [strict[f"p{i}"][0].reason for i in range(4)] == [
        None,
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    capped = judge_dataset(pairs, FilterSettings(max_repeats=3))
    assert [capped[f"p{i}"][0].reason for i in range(4)] == [None, None, None, "duplicate"]
    # In a large dataset a text may repeat up to 1% of the QA count.
    others = [PairQA(f"o{i}", [(f"Which video uses {i} eggs?", f"The first, {i}.")], D1, D2)
              for i in range(496)]  # fmt: skip
    shared = judge_dataset(pairs + others, FilterSettings(max_repeats=3, max_share=0.01))
    assert [shared[f"p{i}"][0].reason for i in range(4)] == [None] * 4  # 4 <= 1% of 500


def test_closed_form_answers_are_one_word_and_may_repeat():
    closed = ("Is the technique the same in both videos? Answer YES or NO.", "NO")
    assert _verdicts([closed])[0][0] is None
    assert _verdicts([("Is the technique the same in both videos?", "NO")])[0][0] == "malformed"
    pairs = [PairQA(f"p{i}", [closed], D1, D2) for i in range(5)]
    verdicts = judge_dataset(pairs, FilterSettings(max_repeats=1, max_share=0))
    assert all(verdicts[f"p{i}"][0].keep for i in range(5))


def test_a_single_video_question_passes_when_the_answer_uses_both_descriptions():
    question = "What does the person stir with?"  # not comparative by itself
    assert _verdicts([(question, "A wooden spatula.")])[0][0] == "single_video"
    assert _verdicts([(question, "A wooden spatula, or black chopsticks.")])[0][0] is None
    assert _verdicts([(question, "Chopsticks instead of a spatula.")])[0][0] is None


def test_an_answer_that_gives_a_video_what_only_the_other_has_is_dropped():
    question = "What does the person stir with in each video?"
    # The annotators' order is "<candidate's> instead of <reference's>": here reversed.
    assert _verdicts([(question, "A spatula instead of chopsticks.")])[0] == (
        "swapped_roles",
        "says of one video spatula, chopsticks, which the other's description has",
    )
    swapped = "The first video stirs with chopsticks, the second with a spatula."
    assert _verdicts([(question, swapped)])[0][0] == "swapped_roles"
    right = "The first video stirs with a spatula, the second with chopsticks."
    assert _verdicts([(question, right)])[0][0] is None
    # Inflections are no swap: "stirs" in the answer, "stir" in both descriptions.
    assert (
        _verdicts([(question, "Video 1 stirs with a spatula, video 2 with chopsticks.")])[0][0]
        is None
    )


def test_an_answer_that_invents_what_a_video_does_is_ungrounded():
    question = "How does the technique differ between the two videos?"
    # Neither description says "carefully": made up, however well the rest is grounded.
    invented = "Video 1 stirs quickly in circles with a spatula, video 2 stirs carefully."
    assert _verdicts([(question, invented)])[0] == (
        "ungrounded",
        "says of one video carefully, which neither description has",
    )
    # A negated word is said of no video; "Video 1"'s number is no content word either.
    negated = "Video 1 stirs quickly with a spatula, video 2 does not stir quickly."
    assert _verdicts([(question, negated)])[0][0] is None
    assert content_words("Video 1 and video 2's 2 spatulas") == {"2", "spatula"}


def test_the_frame_of_a_comparison_is_no_evidence_of_a_swap():
    # "results", "type", "serves", "garnish" frame the difference in either video.
    question = "What is the difference in the type of result?"
    answer = "Video 1 results in golden onions, while Video 2 results in charred onions."
    assert _verdicts([(question, answer)])[0][0] is None


def test_no_filter_keeps_everything_that_parsed():
    bad = [("", ""), ("Describe it.", "x")]
    verdicts = judge_dataset([PairQA("p", bad, D1, D2)], FilterSettings(enabled=False))
    assert all(v.keep for v in verdicts["p"])


def test_lemma_lite_meets_inflections_on_both_sides():
    assert lemma("tomatoes") == lemma("tomato")
    assert lemma("seasoning") == lemma("season") == lemma("seasons")
    assert lemma("skipped") == lemma("skip") and lemma("served") == lemma("serve")
    assert (
        lemma("onion's") == lemma("onions")
        and lemma("slowly") == lemma("slow")
        and lemma("steadily") == lemma("steady")
    )
    assert lemma("fried") == lemma("fries") == lemma("fry") and lemma("jelly") == "jelly"
    assert content_words("The person uses back-and-forth strokes") == {"back", "forth", "strok"}


# --- categories ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "category"),
    [
        ("What is the main difference in ingredients between the two videos?", "Ingredients"),
        ("How much batter does each video pour?", "Ingredients"),
        ("Did both videos use the same vessel?", "Tools/Equipment"),
        ("Do both videos work at the same speed?", "Technique"),
        ("What is the main difference in the order of actions between the videos?", "Actions"),
        ("What is the main difference in how the food looks between the two videos?", "Visuals"),
        ("Is the food served the same way in both videos?", "Serving / Presentation"),
        ("Why is the sky blue?", OTHER),
    ],
)
def test_questions_fall_into_the_official_categories(question, category):
    assert classify_question(question) == category
