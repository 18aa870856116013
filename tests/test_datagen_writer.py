"""Which LLM writes the descriptions and QA when --llm is not given."""

from __future__ import annotations


def test_the_default_writer_is_qwen_through_llamacpp_where_installed(monkeypatch, tmp_path):
    import importlib.util

    import stepdiff.llm.parts as parts
    from stepdiff.datagen.config import WRITER_LLM, DatagenConfig
    from stepdiff.llm.aliases import DEFAULT_LLM

    real_find_spec = importlib.util.find_spec
    for llamacpp, model, expected in (
        (True, True, WRITER_LLM),
        (True, False, DEFAULT_LLM),
        (False, True, DEFAULT_LLM),
    ):
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a, on=llamacpp: (
                (object() if on else None) if name == "llama_cpp" else real_find_spec(name, *a)
            ),
        )
        monkeypatch.setattr(parts, "is_installed", lambda m, on=model: on)
        assert DatagenConfig(out=tmp_path).llm == expected
        assert DatagenConfig(out=tmp_path, llm="none").llm == "none"  # as given
