"""LLM aggregation of step descriptions: the sources text, batching, parse failures
recorded (not raised), provenance, and the template fallback."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from stepdiff.datagen.aggregate import (
    DescriptionResult,
    StepSources,
    aggregate_descriptions,
    sources_text,
    template_description,
)
from stepdiff.errors import ConfigError
from stepdiff.llm.textgen import PromptTooLongError, TextGenerationError

ONIONS = StepSources(
    clip_id="vid_a_10_18",
    keystep="stir-fry the onions",
    tags=[("wooden spoon", 0.55), ("frying pan", 0.912), ("dough", 0.04)],
    captions=["a person stirs onions in a pan", "onions sizzle in oil"],
    narration="  now I stir the onions\nuntil golden ",
    metadata="Easy vegetable stir-fry",
)
BARE = StepSources(clip_id="vid_b_0_5", keystep="whisk the eggs", tags=[], captions=[])


def _keystep_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("Keystep:"))


class FakeGenerator:
    """Replies from a function of the user message; records every call."""

    name = "fake-llm"

    def __init__(self, reply=None) -> None:
        self.reply = reply or (lambda user: f"Description: about {_keystep_line(user)}")
        self.calls: list[dict] = []

    def generate(self, prompts: Sequence[list[dict[str, str]]], **kwargs: object) -> list[str]:
        self.calls.append({"prompts": list(prompts), **kwargs})
        return [self.reply(p[-1]["content"]) for p in prompts]


def test_sources_text_lists_every_source_with_tag_scores():
    assert sources_text(ONIONS) == (
        "Keystep: stir-fry the onions\n"
        "Metadata: Easy vegetable stir-fry\n"
        "Object tags (score): frying pan (0.91), wooden spoon (0.55), dough (0.04)\n"
        "Action captions: a person stirs onions in a pan | onions sizzle in oil\n"
        "Narration: now I stir the onions until golden"
    )
    assert sources_text(BARE).splitlines()[1:] == [
        "Metadata: none",
        "Object tags (score): none",
        "Action captions: none",
        "Narration: none",
    ]
    many = StepSources("c_0_1", "k", tags=[(f"t{i}", i / 100) for i in range(30)])
    shown = sources_text(many, max_tags=3).splitlines()[2]
    assert shown == "Object tags (score): t29 (0.29), t28 (0.28), t27 (0.27)"


def test_aggregate_batches_prompts_and_records_provenance():
    sources = [StepSources(f"v{i}_0_5", f"step {i}", captions=[f"caption {i}"]) for i in range(5)]
    generator = FakeGenerator()
    results = aggregate_descriptions(sources, generator, seed=7, batch_size=2)
    assert [len(call["prompts"]) for call in generator.calls] == [2, 2, 1]
    assert all(call["seed"] == 7 and call["temperature"] == 0.0 for call in generator.calls)
    user = generator.calls[0]["prompts"][0][-1]["content"]
    assert sources_text(sources[0]) in user  # the sources reach the LLM verbatim
    assert results == [
        DescriptionResult(
            clip_id=f"v{i}_0_5",
            description=f"about Keystep: step {i}",
            error=None,
            prompt_id="aggregate_v1",
            model="fake-llm",
            seed=7,
        )
        for i in range(5)
    ]
    assert results[0].to_json()["prompt_id"] == "aggregate_v1"


def test_unparseable_replies_are_recorded_not_raised():
    replies = iter(["Description: The cook stirs onions.", "   ", "**Description:**"])
    generator = FakeGenerator(reply=lambda user: next(replies))
    results = aggregate_descriptions([ONIONS, BARE, ONIONS], generator)
    assert [r.description for r in results] == ["The cook stirs onions.", None, None]
    empty = "description reply is empty"
    assert [r.error for r in results] == [None, empty, empty]
    assert sum(r.error is not None for r in results) == 2


def test_a_description_too_long_for_the_context_is_counted_not_fatal():
    def reply(user: str) -> str:
        if "whisk the eggs" in user:
            raise PromptTooLongError(PromptTooLongError.MESSAGE)
        return "Description: The cook stirs onions."

    results = aggregate_descriptions([ONIONS, BARE, ONIONS], FakeGenerator(reply=reply))
    assert [r.description for r in results] == [
        "The cook stirs onions.",
        None,
        "The cook stirs onions.",
    ]
    assert results[1].error == "prompt longer than the LLM's context window"


def test_replies_that_copy_the_instructions_are_errors():
    # What SmolLM2-135M really replied (abridged): the prompt's steps, filled in.
    echo = (
        "The action: what the person does and how (technique, motion, speed). The object "
        "tags: frying pan (0.91). Merge these sources into one description of the clip, "
        "at most three sentences, in this order:"
    )
    results = aggregate_descriptions([ONIONS], FakeGenerator(reply=lambda user: echo))
    assert results[0].description is None
    assert results[0].error == "reply repeats the prompt's instructions"
    # Short instruction words ("The action:") alone are fine in a real description.
    fine = "Description: The action: stirring. The objects: a pan. The narration: none."
    results = aggregate_descriptions([ONIONS], FakeGenerator(reply=lambda user: fine))
    assert results[0].error is None


def test_aggregate_rejects_a_generator_that_drops_replies_and_bad_batch_size():
    class Short(FakeGenerator):
        def generate(self, prompts, **kwargs):
            return ["Description: x"] * (len(prompts) - 1)

    with pytest.raises(TextGenerationError, match="returned 1 replies for 2 prompts"):
        aggregate_descriptions([ONIONS, BARE], Short())
    with pytest.raises(ConfigError, match="batch_size 0"):
        aggregate_descriptions([ONIONS], FakeGenerator(), batch_size=0)
    assert aggregate_descriptions([], FakeGenerator()) == []


def test_aggregate_with_an_unknown_prompt_version_fails_before_generating():
    generator = FakeGenerator()
    with pytest.raises(ConfigError, match="no version 99"):
        aggregate_descriptions([ONIONS], generator, prompt_version=99)
    assert generator.calls == []


def test_template_description_has_the_llm_structure():
    assert template_description(ONIONS) == (
        "Action: a person stirs onions in a pan. "
        "Objects: frying pan, wooden spoon. "  # dough (0.04) is below the 0.1 cut
        "Narration: now I stir the onions until golden."
    )
    assert template_description(BARE) == (
        "Action: whisk the eggs. Objects: none recognised. Narration: none."
    )
    shuffled = StepSources(**{**ONIONS.__dict__, "tags": list(reversed(ONIONS.tags))})
    assert template_description(shuffled) == template_description(ONIONS)


def test_aggregate_runs_end_to_end_with_a_real_backend():
    import torch

    from stepdiff.llm.textgen import TransformersGenerator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: a second thread only waits (see test_textgen)
    try:
        generator = TransformersGenerator("tiny")
        results = aggregate_descriptions([ONIONS, BARE], generator, max_new_tokens=6)
    finally:
        torch.set_num_threads(threads)
    assert [r.clip_id for r in results] == [ONIONS.clip_id, BARE.clip_id]
    for result in results:  # a random model: either a description or a recorded reason
        assert (result.description is None) != (result.error is None)
        assert result.model == "hf:tiny" and result.prompt_id == "aggregate_v1"
