"""Prompt formats: the paper's Llama-2 prompt verbatim, chat templates, plain text."""

from __future__ import annotations

import pytest

from stepdiff.errors import ConfigError
from stepdiff.llm.prompt import VIDEO_SLOT, VIDEO_TOKEN_ID, select_prompt_format, tokenise_sample
from stepdiff.llm.tiny import build_byte_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_tokenizer()


def test_llama2_chat_models_get_the_papers_prompt(tokenizer):
    fmt = select_prompt_format("auto", "meta-llama/Llama-2-70b-chat-hf", tokenizer)
    assert fmt.kind == "llama2"
    text = fmt.prompt("What is the main difference in tools?") + fmt.answer("q", "A whisk.")
    expected = (
        "<s> [INST] <<SYS>> You are a helpful AI assistant that answers questions about a pair "
        f"of videos. Answer in a single sentence. Here is the first video: {VIDEO_SLOT}. Here is "
        f"the second video: {VIDEO_SLOT}. <</SYS>> What is the main difference in tools? "
        "[/INST] A whisk. </s>"
    )
    assert text == expected


def test_chat_models_use_their_template_with_the_same_system_text(tokenizer):
    fmt = select_prompt_format("auto", "smollm2-135m-instruct", tokenizer)
    assert fmt.kind == "chat"
    prompt = fmt.prompt("Am I done?")
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant")
    assert prompt.count(VIDEO_SLOT) == 2
    assert prompt.endswith("<|im_start|>user\nAm I done?<|im_end|>\n<|im_start|>assistant\n")
    assert fmt.answer("Am I done?", "Not yet.") == "Not yet.<|im_end|>\n"


def test_models_without_template_fall_back_to_plain(tokenizer):
    tokenizer = build_byte_tokenizer()
    tokenizer.chat_template = None
    fmt = select_prompt_format("auto", "gpt2", tokenizer)
    assert fmt.kind == "plain"
    assert fmt.prompt("Q?").endswith("Question: Q?\nAnswer: ")
    with pytest.raises(ConfigError, match="prompt_format 'vicuna'"):
        select_prompt_format("vicuna", "gpt2", tokenizer)


def test_each_slot_becomes_the_video_token_run(tokenizer):
    fmt = select_prompt_format("chat", "x", tokenizer)
    sample = tokenise_sample(fmt, "Q?", "A.", num_video_tokens=3)
    ids = sample.prompt_ids
    runs = [i for i, token in enumerate(ids) if token == VIDEO_TOKEN_ID]
    assert len(runs) == 6
    assert runs[0:3] == list(range(runs[0], runs[0] + 3))
    assert tokenizer.decode(sample.answer_ids) == "A.<|im_end|>\n"
    bare = tokenise_sample(fmt, "Q?", "YES", num_video_tokens=3, answer_end=False)
    assert tokenizer.decode(bare.answer_ids) == "YES"
