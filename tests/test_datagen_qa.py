"""QA writers: the rubric (answers are SynthKitchen ground-truth captions) and the LLM
path (a scripted generator with well-formed and broken replies, and the tiny model)."""

from __future__ import annotations

import itertools
import random

import pytest

from stepdiff.data.questions import same_question
from stepdiff.datagen.qa import (
    CATEGORY_TOPICS,
    CLOSED_FORM_SUFFIX,
    SAME_QUESTIONS,
    PairText,
    format_reply,
    generate_llm_qa,
    graded_same_qa,
    is_closed_form,
    rubric_qa,
    rubric_record,
    same_category_qa,
    soft_same_qa,
    threshold_same_qa,
)
from stepdiff.datagen.records import PairRecord, make_pair_id
from stepdiff.synthkitchen.builder import SIZES, sample_clips
from stepdiff.synthkitchen.differences import compare, similarity_scores


@pytest.fixture(scope="module")
def spec_pairs():
    """40 (reference, candidate) pairs of SynthKitchen clips of one keystep, other videos."""
    clips = [c for c in sample_clips(SIZES["small"], seed=0) if c.split == "train"]
    pairs = [
        (r, c)
        for r, c in itertools.permutations(clips, 2)
        if r.keystep == c.keystep and r.video_uid != c.video_uid
    ]
    return random.Random(0).sample(pairs, 40)


def _pair_record(reference, candidate) -> PairRecord:
    return PairRecord(
        make_pair_id(reference.clip_id, candidate.clip_id),
        reference.clip_id,
        candidate.clip_id,
        reference.keystep,
        0.8,
    )


def test_rubric_answers_are_ground_truth_captions(spec_pairs):
    by_topic = {topic: category for category, topic in CATEGORY_TOPICS.items()}
    asked_yes_no = 0
    for reference, candidate in spec_pairs:
        summary, qa = rubric_qa(reference, candidate, seed=0)
        comparison = compare(reference, candidate)
        assert len(qa) == 3 and summary
        for question, answer in qa:
            if question.startswith("What is the main difference in "):
                topic = question.removeprefix("What is the main difference in ")
                category = by_topic[topic.removesuffix(" between the two videos?")]
                assert answer in comparison[category].main.captions
            else:
                asked_yes_no += 1
                captions = {
                    c.lower()
                    for cat in comparison.values()
                    for d in cat.differences
                    for c in d.captions
                }
                if answer.startswith("No, "):
                    assert answer.removeprefix("No, ").rstrip(".") in captions
                else:
                    assert answer.startswith("Yes, ")
    assert asked_yes_no >= len(spec_pairs)


def test_rubric_asks_about_the_most_severe_categories_and_is_deterministic(spec_pairs):
    reference, candidate = spec_pairs[0]
    comparison = compare(reference, candidate)
    _, qa = rubric_qa(reference, candidate, seed=0)
    worst = max(c.penalty for c in comparison.values())
    first = qa[0][0].removeprefix("What is the main difference in ")
    category = next(c for c, t in CATEGORY_TOPICS.items() if first.startswith(t))
    assert comparison[category].penalty == worst
    assert rubric_qa(reference, candidate, seed=0) == (_, qa)
    pair = _pair_record(reference, candidate)
    record = rubric_record(pair, reference, candidate, seed=0)
    assert record.model == "rubric" and record.prompt_id == "rubric_v1" and record.error is None
    assert record.raw == format_reply(record.summary, qa)


def _category_of(question: str) -> str:
    stem = question.removesuffix(f" {CLOSED_FORM_SUFFIX}")
    (category,) = [c for c, phrasings in SAME_QUESTIONS.items() if stem in phrasings]
    return category


def test_same_questions_say_yes_exactly_when_nothing_of_the_category_differs(spec_pairs):
    answers: list[str] = []
    for reference, candidate in spec_pairs:
        scores = similarity_scores(reference, candidate)
        qa = same_category_qa(reference, candidate, seed=0)
        categories = [_category_of(q) for q, _ in qa]
        assert len(set(categories)) == len(categories), "each category asked once at most"
        for (question, answer), category in zip(qa, categories, strict=True):
            assert is_closed_form(question, answer)
            assert answer == ("YES" if scores[category] == 5 else "NO")
        same = sum(score == 5 for score in scores.values())
        # every "same" category, and as many "different" ones as there are
        assert [a for _, a in qa].count("YES") == same
        assert [a for _, a in qa].count("NO") == min(same, 6 - same)
        answers += [a for _, a in qa]
        assert same_category_qa(reference, candidate, seed=0) == qa
    assert 0 < answers.count("YES") < len(answers)


def test_rubric_record_appends_same_questions_only_when_asked(spec_pairs):
    # a pair with a category in common, so that it gets closed-form questions
    reference, candidate = next(
        (r, c) for r, c in spec_pairs if 5 in similarity_scores(r, c).values()
    )
    pair = _pair_record(reference, candidate)
    plain = rubric_record(pair, reference, candidate, seed=0)
    assert not any(is_closed_form(q["question"], q["answer"]) for q in plain.qa)
    modes = (
        ("paraphrase", same_category_qa),
        ("graded", graded_same_qa),
        ("threshold", threshold_same_qa),
    )
    for mode, added in modes:
        more = rubric_record(pair, reference, candidate, seed=0, same_questions=mode)
        assert more.qa[:3] == plain.qa
        expected = added(reference, candidate, 0)
        assert [(q["question"], q["answer"]) for q in more.qa[3:]] == expected and expected
        assert all(is_closed_form(q["question"], q["answer"]) for q in more.qa[3:])
    assert not is_closed_form("Did both videos use the same tool?", "YES")
    assert not is_closed_form(f"Same tool? {CLOSED_FORM_SUFFIX}", "Yes, both use a whisk.")


def test_graded_same_questions_ask_diffranks_question_with_yes_at_rate_score_over_5(spec_pairs):
    questions = {same_question(c): c for c in SAME_QUESTIONS}
    by_score: dict[int, list[bool]] = {s: [] for s in range(6)}
    for reference, candidate in spec_pairs:
        scores = similarity_scores(reference, candidate)
        qa = graded_same_qa(reference, candidate, seed=0)
        # every category once, in the benchmark's exact wording
        assert sorted(q for q, _ in qa) == sorted(questions)
        for question, answer in qa:
            assert is_closed_form(question, answer)
            by_score[scores[questions[question]]].append(answer == "YES")
        assert graded_same_qa(reference, candidate, seed=0) == qa
    # identical categories are always YES, fully different ones always NO, and in
    # between the YES rate is near score/5 (27-61 answers per score over 40 pairs)
    assert all(by_score[5]) and not any(by_score[0])
    for score in range(1, 5):
        rate = sum(by_score[score]) / len(by_score[score])
        assert abs(rate - score / 5) < 0.15, (score, rate)
    reseeded = [graded_same_qa(r, c, seed=1) for r, c in spec_pairs]
    assert reseeded != [graded_same_qa(r, c, seed=0) for r, c in spec_pairs]


def test_threshold_same_questions_say_yes_exactly_from_score_3(spec_pairs):
    questions = {same_question(c): c for c in SAME_QUESTIONS}
    answered = 0
    for reference, candidate in spec_pairs:
        scores = similarity_scores(reference, candidate)
        qa = threshold_same_qa(reference, candidate, seed=0)
        assert sorted(q for q, _ in qa) == sorted(questions)
        for question, answer in qa:
            assert answer == ("YES" if scores[questions[question]] >= 3 else "NO")
            answered += 1
    assert answered == 6 * len(spec_pairs)


def test_soft_same_questions_give_yes_the_probability_score_over_5(spec_pairs):
    questions = {same_question(c): c for c in SAME_QUESTIONS}
    for reference, candidate in spec_pairs:
        scores = similarity_scores(reference, candidate)
        qa = soft_same_qa(reference, candidate, seed=0)
        # every category once in DiffRank's wording, in the threshold mode's order
        expected = [q for q, _ in threshold_same_qa(reference, candidate, seed=0)]
        assert [e["question"] for e in qa] == expected
        for entry in qa:
            assert (entry["answer"], entry["alternative"]) == ("YES", "NO")
            assert entry["answer_probability"] == scores[questions[entry["question"]]] / 5
    pair = _pair_record(*spec_pairs[0])
    record = rubric_record(pair, *spec_pairs[0], seed=0, same_questions="soft")
    assert record.qa[3:] == soft_same_qa(*spec_pairs[0], seed=0)


class Scripted:
    """A TextGenerator whose replies are given in advance."""

    name = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.prompts: list = []

    def generate(self, prompts, *, max_new_tokens=256, temperature=0.0, seed=0):
        self.prompts.extend(prompts)
        replies, self.replies = self.replies[: len(prompts)], self.replies[len(prompts) :]
        return replies


def _items() -> list[PairText]:
    pair = PairRecord("a_0_1|b_0_1", "a_0_1", "b_0_1", "whisk", 0.8)
    return [
        PairText(
            pair, "The person whisks eggs with a fork.", "The person whisks eggs with a whisk."
        ),
        PairText(pair, "One.", "Two."),
    ]


def test_llm_qa_parses_well_formed_replies_and_counts_broken_ones():
    good = (
        "Summary: The second video uses a whisk instead of a fork.\n"
        "Q1: What tool differs between the two videos?\nA1: A whisk instead of a fork.\n"
        "Q2: Do both videos whisk eggs?\nA2: Yes, both whisk eggs.\n"
        "Q3: Which video uses a fork?\nA3: The first video."
    )
    generator = Scripted([good, "I cannot help with that.", "Still no."])
    first, second = generate_llm_qa(_items(), generator, seed=3)
    assert first.summary == "The second video uses a whisk instead of a fork."
    assert [qa["question"] for qa in first.qa][0] == "What tool differs between the two videos?"
    assert len(first.qa) == 3 and first.error is None and first.raw == good
    assert (first.prompt_id, first.model, first.seed) == ("qa_v2", "scripted", 3)
    # The broken reply got the follow-up turn, and the follow-up's reply is kept too.
    assert second.qa == [] and "no question-answer pair" in second.error
    assert second.raw == "I cannot help with that.\n[follow-up]\nStill no."
    assert len(generator.prompts) == 3 and generator.prompts[2][-2]["role"] == "assistant"
    # The prompt carries both descriptions, the reference's first.
    user = generator.prompts[0][-1]["content"]
    assert user.index("with a fork") < user.index("with a whisk")


def test_llm_qa_runs_on_the_tiny_random_model():
    from stepdiff.llm.textgen import build_text_generator

    records = generate_llm_qa(_items(), build_text_generator("tiny"), max_new_tokens=12)
    assert len(records) == 2
    for record in records:
        assert record.model.endswith("tiny") and isinstance(record.raw, str)
        assert (record.error is None) == bool(record.qa)  # random text rarely parses


def test_a_reply_that_stops_after_the_summary_gets_its_qa_from_the_follow_up_turn():
    summary_only = "Summary: The second video uses a whisk instead of a fork."
    qa = "Q1: Which tool?\nA1: A whisk.\nQ2: Which food?\nA2: Eggs.\nQ3: Which bowl?\nA3: Glass."
    generator = Scripted([summary_only, qa])
    [record] = generate_llm_qa(_items()[:1], generator)
    assert record.summary == "The second video uses a whisk instead of a fork."
    assert [q["answer"] for q in record.qa] == ["A whisk.", "Eggs.", "Glass."]
    assert record.error is None and record.raw == f"{summary_only}\n[follow-up]\n{qa}"
    follow_up = generator.prompts[1]
    assert follow_up[-2] == {"role": "assistant", "content": summary_only}
    assert follow_up[-1]["content"].startswith("Now write the 3 question-answer pairs")
    # Version 1, without a follow-up turn, keeps the reply as it is.
    [plain] = generate_llm_qa(_items()[:1], Scripted([summary_only]), prompt_version=1)
    assert plain.qa == [] and plain.prompt_id == "qa_v1"


def test_a_one_prompt_at_a_time_writer_gets_each_follow_up_right_after_its_first_reply():
    """llama.cpp reuses the previous prompt's KV cache: the follow-up must come next."""
    summary_only = "Summary: They differ."
    qa = "Q1: Which tool?\nA1: A whisk.\nQ2: Which food?\nA2: Eggs.\nQ3: Which bowl?\nA3: Glass."
    generator = Scripted([summary_only, qa, summary_only, qa])
    generator.one_prompt_at_a_time = True
    records = generate_llm_qa(_items(), generator)
    assert [len(r.qa) for r in records] == [3, 3]
    roles = [[m["role"] for m in prompt][-1:] + [len(prompt)] for prompt in generator.prompts]
    first, follow_up = len(generator.prompts[0]), len(generator.prompts[0]) + 2
    assert roles == [["user", first], ["user", follow_up]] * 2
    assert generator.prompts[1][-2]["content"] == summary_only
    assert (
        "One." in generator.prompts[2][-1]["content"]
    )  # the second pair after the first's follow-up
    # A batched writer sends both first turns before any follow-up.
    batched = Scripted([summary_only, summary_only, qa, qa])
    generate_llm_qa(_items(), batched)
    assert [len(p) for p in batched.prompts] == [first, first, follow_up, follow_up]


def test_a_pair_too_long_for_the_context_gets_an_error_record_and_the_others_go_on():
    from stepdiff.llm.textgen import PromptTooLongError

    qa = (
        "Summary: Tools differ.\nQ1: Which tool?\nA1: A whisk.\nQ2: Which food?\nA2: Eggs.\n"
        "Q3: Which bowl?\nA3: Glass."
    )

    class Limited:
        name = "limited"

        def generate(self, prompts, **options):
            if any("One." in p[-1]["content"] for p in prompts):
                raise PromptTooLongError(PromptTooLongError.MESSAGE)
            return [qa for _ in prompts]

    first, second = generate_llm_qa(_items(), Limited())
    assert len(first.qa) == 3 and first.error is None
    assert second.qa == [] and second.error == "prompt longer than the LLM's context window"
