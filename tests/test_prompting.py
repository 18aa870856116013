"""Versioned prompts (loading, rendering) and the parsers of LLM replies."""

from __future__ import annotations

import pytest

from stepdiff.datagen.prompting import (
    ParsedQA,
    load_prompt,
    parse_description_reply,
    parse_qa_reply,
    prompt_dir,
    render,
)
from stepdiff.errors import ConfigError, DataFormatError

# --- prompts ----------------------------------------------------------------------------


def test_qa_prompt_is_the_papers_with_an_output_format():
    prompt = load_prompt("qa")
    assert (prompt.name, prompt.version, prompt.id) == ("qa", 2, "qa_v2")
    assert prompt.follow_up.startswith("Now write the 3 question-answer pairs")
    assert load_prompt("qa", 1).follow_up is None
    assert prompt.fields == {"description1", "description2"}
    messages = render(prompt, description1="A cook stirs onions", description2="A cook whisks")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert user.startswith(
        "Video 1: A cook stirs onions. Video 2: A cook whisks. Summarize the differences and "
        "generate 3 question-answer pairs comparing the two videos."
    )
    for label in ("Summary:", "Q1:", "A1:", "Q3:", "A3:"):
        assert f"\n{label}" in user
    assert "{" not in user and "#" not in messages[0]["content"]  # comments stay out


def test_aggregate_prompt_asks_for_the_papers_structure():
    prompt = load_prompt("aggregate")
    assert prompt.id == "aggregate_v1" and prompt.fields == {"sources"}
    user = render(prompt, sources="Keystep: stir")[-1]["content"]
    assert "Keystep: stir" in user
    for part in ("action", "objects with their attributes", "narration", "Description:"):
        assert part in user


def test_render_inserts_values_verbatim_and_checks_the_fields():
    prompt = load_prompt("qa")
    tricky = 'a {description2} and {"json": 1}'
    user = render(prompt, description1=tricky, description2="B")[1]["content"]
    assert user.startswith(f"Video 1: {tricky}. Video 2: B.")
    with pytest.raises(ConfigError, match="missing fields \\['description2'\\]"):
        render(prompt, description1="A")
    with pytest.raises(ConfigError, match="unexpected \\['descripton2'\\]"):
        render(prompt, description1="A", description2="B", descripton2="typo")


def test_latest_version_is_the_default_and_unknowns_are_config_errors(tmp_path):
    (tmp_path / "qa_v1.txt").write_text("[user]\nold {x}\n")
    (tmp_path / "qa_v2.txt").write_text("# note\n[system]\nsys\n[user]\nnew {x}\n")
    (tmp_path / "qa_extra_v9.txt").write_text("[user]\nanother prompt\n")
    latest = load_prompt("qa", directory=tmp_path)
    assert latest.id == "qa_v2"
    assert render(latest, x="1") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "new 1"},
    ]
    assert load_prompt("qa", 1, directory=tmp_path).messages == (("user", "old {x}"),)
    with pytest.raises(ConfigError, match="no version 3 \\(available: 1, 2\\)"):
        load_prompt("qa", 3, directory=tmp_path)
    with pytest.raises(ConfigError, match="prompt 'nope': unknown; known prompts: qa"):
        load_prompt("nope", directory=tmp_path)
    (tmp_path / "bad_v1.txt").write_text("no sections at all")
    with pytest.raises(ConfigError, match="needs a \\[user\\] section"):
        load_prompt("bad", directory=tmp_path)


def test_packaged_prompt_files_exist():
    names = sorted(p.name for p in prompt_dir().glob("*.txt"))
    assert names == ["aggregate_v1.txt", "qa_v1.txt", "qa_v2.txt"]


# --- QA replies -------------------------------------------------------------------------

EXPECTED = [("What tool is used?", "A whisk in video 2."), ("How fast?", "Faster in video 1.")]


@pytest.mark.parametrize(
    "reply",
    [
        # the format the prompt asks for
        "Summary: Video 2 whisks.\nQ1: What tool is used?\nA1: A whisk in video 2.\n"
        "Q2: How fast?\nA2: Faster in video 1.",
        # markdown, blank lines and extra spaces
        "**Summary:**   Video 2 whisks.\n\n**Q1:** What tool is used?\n**A1:** A whisk in "
        "video 2.\n\n  **Q2:**  How fast?  \n  **A2:** Faster in video 1.\n",
        # numbered, with labels inside, one pair on a line
        "### Summary\nVideo 2 whisks.\n\n1. Question: What tool is used? Answer: A whisk in "
        "video 2.\n2. Q: How fast?\n   A: Faster in video 1.",
        # "Question 1:" / "Answer 1:", a preamble for a summary, a heading
        "Video 2 whisks.\nQuestion-answer pairs:\nQuestion 1: What tool is used?\n"
        "Answer 1: A whisk in video 2.\nQuestion 2: How fast?\nAnswer 2:\nFaster in video 1.",
        # bold Q/A without numbers, bulleted
        "Summary: Video 2 whisks.\n- **Q:** What tool is used?\n- **A:** A whisk in video 2.\n"
        "- **Q:** How fast?\n- **A:** Faster in video 1.",
        # "1." questions with unlabelled answers on the next line
        "Summary: Video 2 whisks.\n1. What tool is used?\nA whisk in video 2.\n"
        "2. How fast?\nFaster in video 1.",
    ],
)
def test_qa_reply_styles_parse_to_the_same_pairs(reply):
    parsed = parse_qa_reply(reply)
    assert parsed == ParsedQA("Video 2 whisks.", EXPECTED)


def test_qa_reply_as_json():
    listed = (
        "Here you go:\n```json\n"
        '[{"question": "What tool is used?", "answer": "A whisk in video 2."},\n'
        ' {"Question": "How fast?", "Answer": "Faster in video 1."}]\n```'
    )
    assert parse_qa_reply(listed) == ParsedQA("", EXPECTED)
    wrapped = (
        '{"summary": "Video 2 whisks.", "pairs": [{"q": "What tool is used?", '
        '"a": "A whisk in video 2."}, {"q": "How fast?", "a": "Faster in video 1."}]}'
    )
    assert parse_qa_reply(wrapped) == ParsedQA("Video 2 whisks.", EXPECTED)


def test_qa_reply_keeps_valid_pairs_and_caps_at_expected():
    partial = "Summary: s\nQ1: What tool is used?\nA1: A whisk in video 2.\nQ2: Unanswered?"
    assert parse_qa_reply(partial).pairs == EXPECTED[:1]
    many = "\n".join(f"Q{i}: q{i}?\nA{i}: a{i}." for i in range(1, 6))
    assert parse_qa_reply(many).pairs == [("q1?", "a1."), ("q2?", "a2."), ("q3?", "a3.")]
    assert len(parse_qa_reply(many, expected=5).pairs) == 5


def test_copied_format_placeholders_are_not_pairs():
    echo = "Summary: <one or two sentences>\nQ1: <question>\nA1: <answer>\nQ2: Why?\nA2: So."
    assert parse_qa_reply(echo) == ParsedQA("", [("Why?", "So.")])
    with pytest.raises(DataFormatError, match="no question-answer pair"):
        parse_qa_reply("Summary: <summary>\nQ1: <question>\nA1: <answer>")


def test_answer_words_starting_with_a_are_not_labels():
    reply = "Q1: What does the cook hold?\nA1: A spatula.\nA pan is also visible."
    assert parse_qa_reply(reply).pairs == [
        ("What does the cook hold?", "A spatula. A pan is also visible.")
    ]


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("", "QA reply is empty"),
        ("   \n ", "QA reply is empty"),
        ("The two videos differ in the tool used.", "holds no question-answer pair"),
        ("Q1: What tool?\nQ2: How fast?", "holds no question-answer pair"),
    ],
)
def test_unparseable_qa_replies_raise_one_line(reply, reason):
    with pytest.raises(DataFormatError, match=reason) as caught:
        parse_qa_reply(reply)
    assert "\n" not in str(caught.value)


# --- description replies ----------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "Description: The cook stirs onions in a steel pan.",
        "  **Description:** The cook stirs onions\nin a steel pan.  ",
        "Sure! Here is the description:\n\nThe cook stirs onions in a steel pan.",
        "Step description - The cook stirs onions in a steel pan.",
        '```\nDescription: "The cook stirs onions in a steel pan."\n```',
    ],
)
def test_description_reply_prefixes_and_markdown_are_dropped(reply):
    assert parse_description_reply(reply) == "The cook stirs onions in a steel pan."


def test_description_words_are_kept():
    text = "The description of the dish is not needed; the cook stirs."
    assert parse_description_reply(text) == text


@pytest.mark.parametrize("reply", ["", "   ", "Description:", "**Description:**\n\n"])
def test_empty_description_reply_raises(reply):
    with pytest.raises(DataFormatError, match="description reply is empty"):
        parse_description_reply(reply)
