"""The tokenizer read without transformers gives transformers' ids, texts and prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepdiff.errors import ModelLoadError
from stepdiff.llm.folder_tokenizer import FolderTokenizer
from stepdiff.llm.prompt import VIDEOS_TEXT, select_prompt_format, tokenise_sample
from stepdiff.llm.tiny import build_byte_tokenizer

TEXTS = [
    "a cat",
    " Whisk the eggs, then stir.  Twice!",
    "don't stop ; it 's fine .",
    "crème brûlée — 3½ cups\n\ttabs",
    "<|im_start|>user\nhi<|im_end|>",  # special tokens inside text are matched as such
    "",
]
QUESTIONS = [
    "What is the main difference in tools?",
    "Do these two videos show the same Technique? Answer YES or NO.",
]


def _pair(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), FolderTokenizer(folder)


def _assert_same(reference, ours) -> None:
    for text in TEXTS:
        expected = reference(text, add_special_tokens=False)["input_ids"]
        assert ours(text, add_special_tokens=False)["input_ids"] == expected, text
        for skip in (True, False):
            assert ours.decode(expected, skip_special_tokens=skip) == reference.decode(
                expected, skip_special_tokens=skip
            )
    sequences = [reference(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    assert ours.batch_decode(sequences, skip_special_tokens=True) == reference.batch_decode(
        sequences, skip_special_tokens=True
    )
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "eos_token", "pad_token"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert len(ours) == len(reference)
    # Prompts, answers and their tokens as the model builds them.
    formats = [select_prompt_format("auto", "llm", tok) for tok in (reference, ours)]
    assert formats[0].kind == formats[1].kind == "chat"
    for question in QUESTIONS:
        assert formats[1].prompt(question) == formats[0].prompt(question)
        assert formats[1].answer(question, "YES") == formats[0].answer(question, "YES")
        assert formats[1].prompt(question, "") == formats[0].prompt(question, "")
        samples = [
            tokenise_sample(f, question, "A whisk.", 3, context=VIDEOS_TEXT) for f in formats
        ]
        assert samples[1] == samples[0]
    messages = [{"role": "user", "content": "hi"}]
    assert ours.apply_chat_template(messages, tokenize=False) == reference.apply_chat_template(
        messages, tokenize=False
    )


def test_the_tiny_tokenizer_reads_the_same(tmp_path):
    build_byte_tokenizer().save_pretrained(tmp_path)
    reference, ours = _pair(tmp_path)
    _assert_same(reference, ours)


@pytest.mark.integration
def test_the_shipped_llms_tokenizer_reads_the_same():
    """Qwen2.5-Coder's tokenizer and chat template (a default system message, tools)."""
    from stepdiff.llm.loading import gguf_cache_dir, load_frozen_llm, resolve_gguf
    from stepdiff.model_files import resolve_model_config

    spec = resolve_model_config()[0].llm
    gguf = resolve_gguf(spec)
    if gguf is None:
        pytest.skip(f"the shipped LLM {spec!r} is not a GGUF")
    load_frozen_llm(spec, defer=True)  # de-quantises once, if not cached
    reference, ours = _pair(gguf_cache_dir(gguf))
    _assert_same(reference, ours)


def test_a_deferred_gguf_llm_with_a_broken_tokenizer_is_a_one_line_error(tmp_path):
    import stepdiff.llm.loading as loading

    build_byte_tokenizer().save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read its tokenizer") as error:
        loading._read_folder_tokenizer(tmp_path)
    assert "\n" not in str(error.value)


def test_special_tokens_and_tokenised_templates_are_refused(tmp_path):
    """transformers adds special tokens by its own post-processor settings, and returns
    tokenised templates in its own container: this tokenizer refuses both instead."""
    assert not FolderTokenizer.can_read(tmp_path)
    build_byte_tokenizer().save_pretrained(tmp_path)
    assert FolderTokenizer.can_read(tmp_path)
    tokenizer = FolderTokenizer(tmp_path)
    with pytest.raises(NotImplementedError):
        tokenizer("a cat")
    with pytest.raises(NotImplementedError):
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])


@pytest.mark.integration
def test_a_deferred_gguf_llm_does_not_import_transformers(python_stdout):
    """transformers' tokenizer machinery alone cost about 4.5 s of a cold `ask --llamacpp`."""
    script = (
        "import sys\n"
        "from stepdiff.llm.loading import load_frozen_llm\n"
        "from stepdiff.model_files import resolve_model_config\n"
        "llm = load_frozen_llm(resolve_model_config()[0].llm, defer=True)\n"
        "assert type(llm.tokenizer).__name__ == 'FolderTokenizer', type(llm.tokenizer)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
    )
    assert python_stdout(script) == "[]"
