"""Question-answer pairs comparing two clips (paper Sec. 3.2, step 3).

Two writers produce the same record (:class:`~stepdiff.datagen.records.QARawRecord`):

- :func:`generate_llm_qa`: the paper's way. The versioned ``qa`` prompt gets both step
  descriptions; the LLM replies with a summary of the differences and 3 QA pairs,
  which :func:`~stepdiff.datagen.prompting.parse_qa_reply` reads. A reply that does
  not parse becomes a record with ``error`` set and no QA (counted, never fatal).
- :func:`rubric_qa`: for SynthKitchen, whose clips carry full ground truth. It writes
  the summary and QA from :func:`~stepdiff.synthkitchen.differences.compare`: questions
  about the most severe differences ("What is the main difference in tools between the
  two videos?") answered with a ground-truth caption, and a yes/no question about one
  attribute ("Did both videos use the same vessel?"). Deterministic for (seed, pair);
  records say ``model="rubric"``. The offline default LLM (SmolLM2-135M) writes poor QA,
  so this is what SynthKitchen runs use unless ``--qa-source llm`` is asked for.
  With ``same_questions``, it also asks closed-form "same <category>?" questions:
  paraphrases answered "YES" only for an identical category (:func:`same_category_qa`),
  DiffRank's own question answered "YES" with probability score/5
  (:func:`graded_same_qa`), "YES" from score 3 (:func:`threshold_same_qa`), or "YES"
  with ``answer_probability`` score/5 as a soft target (:func:`soft_same_qa`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stepdiff.data.questions import SAME_ANSWERS, same_question
from stepdiff.datagen.records import PairRecord, QARawRecord
from stepdiff.errors import DataFormatError, first_line
from stepdiff.synthkitchen.differences import (
    CategoryComparison,
    Difference,
    compare,
    similarity_scores,
)
from stepdiff.synthkitchen.world import (
    GARNISH_PHRASES,
    INGREDIENTS,
    MOTION_PHRASES,
    SPEED_PHRASES,
    ClipSpec,
    plate_phrase,
    tool_phrase,
    vessel_phrase,
)

QUESTIONS_PER_PAIR = 3
RUBRIC_MODEL = "rubric"
RUBRIC_PROMPT_ID = "rubric_v1"
QA_PROMPT = "qa"

# How a category reads inside "What is the main difference in ... between the two videos?"
CATEGORY_TOPICS: dict[str, str] = {
    "Ingredients": "ingredients",
    "Tools/Equipment": "tools and equipment",
    "Technique": "technique",
    "Actions": "the order of actions",
    "Visuals": "how the food looks",
    "Serving / Presentation": "serving and presentation",
}


# Closed-form questions end with this instruction and are answered by one word, the
# response-format prompt of short-answer instruction data (as LLaVA-1.5 adds "Answer the
# question using a single word or phrase."): the word's probability is then a score.
CLOSED_FORM_SUFFIX = "Answer YES or NO."
CLOSED_FORM_ANSWERS = SAME_ANSWERS

# Two phrasings per category of "are the two videos the same in this category?"
SAME_QUESTIONS: dict[str, tuple[str, str]] = {
    "Ingredients": (
        "Are the same ingredients used in both videos?",
        "Do both videos use the same ingredients?",
    ),
    "Tools/Equipment": (
        "Are the same tools and equipment used in both videos?",
        "Do both videos use the same tools and equipment?",
    ),
    "Technique": (
        "Is the technique the same in both videos?",
        "Do both videos use the same technique?",
    ),
    "Actions": (
        "Are the actions done the same way in both videos?",
        "Do both videos do the same actions in the same order?",
    ),
    "Visuals": (
        "Does the food look the same in both videos?",
        "Do both videos show food that looks the same?",
    ),
    "Serving / Presentation": (
        "Is the food served the same way in both videos?",
        "Is the serving and presentation the same in both videos?",
    ),
}


@dataclass(frozen=True)
class PairText:
    """A pair with both clips' descriptions (what the LLM writer reads)."""

    pair: PairRecord
    description1: str  # the reference's
    description2: str  # the candidate's


def format_reply(summary: str, pairs: Sequence[tuple[str, str]]) -> str:
    """QA in the reply layout the ``qa`` prompt asks for (the rubric's ``raw`` field)."""
    lines = [f"Summary: {summary}"]
    for number, (question, answer) in enumerate(pairs, start=1):
        lines += [f"Q{number}: {question}", f"A{number}: {answer}"]
    return "\n".join(lines)


# --- the LLM writer --------------------------------------------------------------------


def generate_llm_qa(
    items: Sequence[PairText],
    generator: object,
    *,
    prompt_version: int | None = None,
    seed: int = 0,
    max_new_tokens: int = 256,
) -> list[QARawRecord]:
    """One record per pair: the generator's reply to the ``qa`` prompt, parsed. A reply
    with fewer pairs than asked gets the prompt's follow-up turn (``qa_v2``), whose pairs
    replace the first reply's when there are more of them; ``raw`` keeps both replies.

    ``generator`` is a :class:`~stepdiff.llm.textgen.TextGenerator`; all ``items`` go
    to it in one call (it batches internally). Backend failures (a server down)
    propagate, so a resumed run retries them; unparseable replies and prompts too long
    for the LLM's context give records with the reason in ``error``.
    """
    from stepdiff.datagen.prompting import load_prompt, render
    from stepdiff.llm.textgen import generate_each

    if getattr(generator, "one_prompt_at_a_time", False) and len(items) > 1:
        # llama.cpp keeps the last prompt's KV cache: a follow-up sent right after its
        # own first reply re-reads only the new turn, not the whole conversation.
        options = {"prompt_version": prompt_version, "seed": seed, "max_new_tokens": max_new_tokens}
        return [
            record for item in items for record in generate_llm_qa([item], generator, **options)
        ]
    prompt = load_prompt(QA_PROMPT, prompt_version)
    messages = [
        render(prompt, description1=it.description1, description2=it.description2) for it in items
    ]
    answers = generate_each(generator, messages, max_new_tokens=max_new_tokens, seed=seed)  # type: ignore[arg-type]
    # A prompt too long for the context has no reply: its record carries the error.
    replies = ["" if isinstance(a, Exception) else a for a in answers]
    parsed = [("", [], str(a)) if isinstance(a, Exception) else _parse(a) for a in answers]
    if prompt.follow_up is not None:
        # Replies with fewer pairs than asked get the follow-up turn, all in one call.
        short = [
            i
            for i, (_, qa, _) in enumerate(parsed)
            if len(qa) < QUESTIONS_PER_PAIR and not isinstance(answers[i], Exception)
        ]
        turns = [
            [
                *messages[i],
                {"role": "assistant", "content": replies[i]},
                {"role": "user", "content": prompt.follow_up},
            ]
            for i in short
        ]
        more = generate_each(generator, turns, max_new_tokens=max_new_tokens, seed=seed)  # type: ignore[arg-type]
        for i, extra in zip(short, more, strict=True):
            if isinstance(extra, Exception):  # the conversation outgrew the context
                continue
            summary, qa, error = parsed[i]
            _, extra_qa, _ = _parse(extra)
            if len(extra_qa) > len(qa):  # the follow-up's pairs replace the first reply's
                parsed[i] = (summary or _parse(replies[i] + "\n" + extra)[0], extra_qa, None)
            replies[i] = f"{replies[i]}{FOLLOW_UP_MARK}{extra}"
    return [
        _record(item.pair, summary, qa, reply, error, prompt.id, generator, seed)
        for item, reply, (summary, qa, error) in zip(items, replies, parsed, strict=True)
    ]


# Joins a reply and the reply to the follow-up turn in a record's ``raw`` text.
FOLLOW_UP_MARK = "\n[follow-up]\n"


def _parse(reply: str) -> tuple[str, list[dict[str, str]], str | None]:
    """(summary, QA, error) of one reply; the error is a one-line reason when no pair
    parses."""
    from stepdiff.datagen.prompting import parse_qa_reply

    try:
        parsed = parse_qa_reply(reply, expected=QUESTIONS_PER_PAIR)
    except DataFormatError as failure:
        return "", [], first_line(failure).removeprefix("DataFormatError: ")
    return parsed.summary, [{"question": q, "answer": a} for q, a in parsed.pairs], None


def _record(
    pair: PairRecord,
    summary: str,
    qa: list[dict[str, str]],
    raw: str,
    error: str | None,
    prompt_id: str,
    generator: object,
    seed: int,
) -> QARawRecord:
    return QARawRecord(
        pair_id=pair.pair_id,
        reference=pair.reference,
        candidate=pair.candidate,
        summary=summary,
        qa=qa,
        raw=raw,
        error=error,
        prompt_id=prompt_id,
        model=getattr(generator, "name", str(generator)),
        seed=seed,
    )


# --- the rubric writer -----------------------------------------------------------------

YesNo = tuple[str, Callable[[ClipSpec], str]]  # question, "both ..." phrase of a clip


def _food(spec: ClipSpec) -> str:
    return INGREDIENTS[spec.ingredient].plural


def _garnish(spec: ClipSpec) -> str:
    if spec.garnish == "none":
        return "neither video adds a garnish"
    return f"both garnish with {GARNISH_PHRASES[spec.garnish]}"


# attribute -> (category, question, the "yes" answer for a clip)
YES_NO: dict[str, tuple[str, str, Callable[[ClipSpec], str]]] = {
    "ingredient": (
        "Ingredients",
        "Is the same ingredient used in both videos?",
        lambda s: f"both use {_food(s)}",
    ),
    "tool": (
        "Tools/Equipment",
        "Did both videos use the same tool?",
        lambda s: f"both use {tool_phrase(s.tool)}",
    ),
    "vessel": (
        "Tools/Equipment",
        "Did both videos use the same vessel?",
        lambda s: f"both use {vessel_phrase(s.vessel)}",
    ),
    "motion": (
        "Technique",
        "Is the motion the same in both videos?",
        lambda s: f"in both videos the person moves the tool {MOTION_PHRASES[s.motion]}",
    ),
    "speed": (
        "Technique",
        "Do both videos work at the same speed?",
        lambda s: f"in both videos the person works {SPEED_PHRASES[s.speed]}",
    ),
    "plate": (
        "Serving / Presentation",
        "Is the food served the same way in both videos?",
        lambda s: f"both serve the {_food(s)} {plate_phrase(s.plate)}",
    ),
    "garnish": ("Serving / Presentation", "Do both videos use the same garnish?", _garnish),
}


def _difference(comparison: CategoryComparison, attribute: str) -> Difference | None:
    return next((d for d in comparison.differences if d.attribute == attribute), None)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def rubric_qa(
    reference: ClipSpec, candidate: ClipSpec, seed: int = 0
) -> tuple[str, list[tuple[str, str]]]:
    """The summary and :data:`QUESTIONS_PER_PAIR` QA pairs for a SynthKitchen pair, from
    ground truth. Answers to "main difference" questions are ground-truth captions
    ("<candidate> instead of <reference>"); yes/no answers cite one when they say no."""
    rng = random.Random(f"stepdiff-rubric:{seed}:{reference.clip_id}|{candidate.clip_id}")
    comparison = compare(reference, candidate)
    differing = [c for c in comparison.values() if c.differences]
    # Most severe categories first; a seeded shuffle breaks ties between equals.
    rng.shuffle(differing)
    differing.sort(key=lambda c: -c.penalty)
    asked = differing[: QUESTIONS_PER_PAIR - 1]
    qa = [
        (
            f"What is the main difference in {CATEGORY_TOPICS[c.category]} between the two videos?",
            rng.choice(c.main.captions),  # type: ignore[union-attr]
        )
        for c in asked
    ]
    # Yes/no questions on attributes of categories not asked about yet.
    covered = {c.category for c in asked}
    attributes = [a for a, (category, _, _) in YES_NO.items() if category not in covered]
    rng.shuffle(attributes)
    for attribute in attributes[: QUESTIONS_PER_PAIR - len(qa)]:
        category, question, both = YES_NO[attribute]
        difference = _difference(comparison[category], attribute)
        if difference is None:  # these attributes are never folded into another's caption
            answer = f"Yes, {both(reference)}."
        else:
            answer = f"No, {_lower_first(difference.captions[0])}."
        qa.append((question, answer))
    if differing:
        topics = ", ".join(CATEGORY_TOPICS[c.category] for c in differing)
        details = "; ".join(_lower_first(c.main.captions[0]) for c in differing[:3])  # type: ignore[union-attr]
        summary = f"The second video differs from the first in {topics}: {details}."
    else:
        summary = "The two videos show the step the same way."
    return summary, qa


def same_category_qa(
    reference: ClipSpec, candidate: ClipSpec, seed: int = 0
) -> list[tuple[str, str]]:
    """Closed-form "same <category>?" QA for a SynthKitchen pair: "YES" when nothing of
    the category differs (its severity score is 5), else "NO". Every "YES" category is
    asked, and as many "NO" ones, chosen with a seeded shuffle (none for a pair where
    every category differs): most categories of a same-keystep pair differ, and asking
    more of them makes "NO" the likely answer whatever the videos show (docs/research.md,
    "Closed-form questions", measures both). Deterministic for (seed, pair)."""
    rng = random.Random(f"stepdiff-same:{seed}:{reference.clip_id}|{candidate.clip_id}")
    scores = similarity_scores(reference, candidate)
    same = [c for c in SAME_QUESTIONS if scores[c] == 5]
    different = [c for c in SAME_QUESTIONS if scores[c] < 5]
    rng.shuffle(different)
    asked = same + different[: len(same)]
    rng.shuffle(asked)
    return [
        (
            f"{rng.choice(SAME_QUESTIONS[c])} {CLOSED_FORM_SUFFIX}",
            CLOSED_FORM_ANSWERS[0] if scores[c] == 5 else CLOSED_FORM_ANSWERS[1],
        )
        for c in asked
    ]


def _diffrank_worded_qa(
    reference: ClipSpec,
    candidate: ClipSpec,
    seed: int,
    says_yes: Callable[[int, random.Random], bool],
) -> list[tuple[str, str]]:
    """DiffRank's own question ("Do these two videos show the same {g}? Answer YES or
    NO.") for every category of a SynthKitchen pair, answered by ``says_yes(score,
    rng)`` on the rubric's 0-5 similarity, in a seeded order. Deterministic for (seed,
    pair)."""
    rng = random.Random(f"stepdiff-graded:{seed}:{reference.clip_id}|{candidate.clip_id}")
    scores = similarity_scores(reference, candidate)
    qa = [
        (
            same_question(c),
            CLOSED_FORM_ANSWERS[0] if says_yes(scores[c], rng) else CLOSED_FORM_ANSWERS[1],
        )
        for c in SAME_QUESTIONS
    ]
    rng.shuffle(qa)
    return qa


def graded_same_qa(
    reference: ClipSpec, candidate: ClipSpec, seed: int = 0
) -> list[tuple[str, str]]:
    """DiffRank's question for every category, answered "YES" with probability score/5.
    The cross-entropy of these answers is lowest when P(YES) = score/5, so a model that
    fits them ranks targets by the rubric, not just "identical or not"; over random
    same-keystep pairs about half of the answers are "YES"."""
    return _diffrank_worded_qa(
        reference, candidate, seed, lambda score, rng: rng.random() < score / 5
    )


# "Mostly the same": the rubric's scores 3-5 of 0-5.
THRESHOLD_SCORE = 3


def threshold_same_qa(
    reference: ClipSpec, candidate: ClipSpec, seed: int = 0
) -> list[tuple[str, str]]:
    """DiffRank's question for every category, answered "YES" when the rubric's score is
    at least THRESHOLD_SCORE: the same ranking signal as ``graded_same_qa`` without its
    sampling noise (a graded answer is one coin flip per pair and category), at the cost
    of the scores' steps above and below the threshold."""
    return _diffrank_worded_qa(
        reference, candidate, seed, lambda score, rng: score >= THRESHOLD_SCORE
    )


# A QA as ``qa_raw.jsonl`` holds it: question and answer, and for a soft target its
# answer_probability and alternative.
QAEntry = dict[str, Any]
SameQuestionMode = Callable[[ClipSpec, ClipSpec, int], list[QAEntry]]


def soft_same_qa(reference: ClipSpec, candidate: ClipSpec, seed: int = 0) -> list[QAEntry]:
    """DiffRank's question for every category, answered "YES" with an
    ``answer_probability`` of score/5 and "NO" as the ``alternative``: the target
    ``graded_same_qa`` samples, given whole (training fits P(YES) to it), so it keeps
    every step of the score and none of the coin flips."""
    scores = similarity_scores(reference, candidate)
    category_of = {same_question(c): c for c in SAME_QUESTIONS}
    yes, no = CLOSED_FORM_ANSWERS
    return [
        {
            "question": question,
            "answer": yes,
            "alternative": no,
            "answer_probability": scores[category_of[question]] / 5,
        }
        for question, _ in _diffrank_worded_qa(reference, candidate, seed, lambda *_: True)
    ]


def _entries(
    write: Callable[[ClipSpec, ClipSpec, int], list[tuple[str, str]]],
) -> SameQuestionMode:
    """A (question, answer) writer as one that writes QA entries."""
    return lambda reference, candidate, seed: [
        {"question": q, "answer": a} for q, a in write(reference, candidate, seed)
    ]


# How ``--same-questions`` asks closed-form questions (``none``: it does not).
SAME_QUESTION_MODES: dict[str, SameQuestionMode] = {
    "none": lambda reference, candidate, seed: [],
    "paraphrase": _entries(same_category_qa),
    "graded": _entries(graded_same_qa),
    "threshold": _entries(threshold_same_qa),
    "soft": soft_same_qa,
}


def is_closed_form(question: str, answer: str) -> bool:
    """Whether a QA is a closed-form yes/no question with its one-word answer."""
    return question.endswith(CLOSED_FORM_SUFFIX) and answer in CLOSED_FORM_ANSWERS


def rubric_record(
    pair: PairRecord,
    reference: ClipSpec,
    candidate: ClipSpec,
    seed: int = 0,
    same_questions: str = "none",
) -> QARawRecord:
    """:func:`rubric_qa` as a ``qa_raw.jsonl`` record (``model="rubric"``), followed by
    the closed-form QA of ``same_questions`` (a key of :data:`SAME_QUESTION_MODES`)."""
    summary, qa = rubric_qa(reference, candidate, seed)
    entries = [{"question": q, "answer": a} for q, a in qa]
    entries += SAME_QUESTION_MODES[same_questions](reference, candidate, seed)
    return QARawRecord(
        pair_id=pair.pair_id,
        reference=pair.reference,
        candidate=pair.candidate,
        summary=summary,
        qa=entries,
        raw=format_reply(summary, [(e["question"], e["answer"]) for e in entries]),
        error=None,
        prompt_id=RUBRIC_PROMPT_ID,
        model=RUBRIC_MODEL,
        seed=seed,
    )
