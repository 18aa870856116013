"""A tokenizer read straight from the ``tokenizer.json`` that transformers saved, without
importing transformers.

``AutoTokenizer.from_pretrained`` costs about 4.5 s on 2 cores before the first token: its
import machinery scans every model module, and it parses the 11 MB ``tokenizer.json`` in
Python as well as in Rust. The Rust ``tokenizers`` library reads the same file in 0.6 s.
A cold ``ask --llamacpp`` needs nothing else of transformers, so a deferred LLM
(stepdiff.llm.loading) gets this tokenizer instead.

It stands in for transformers' fast tokenizer only where that is exact: the file must be
one transformers itself wrote (``save_pretrained`` stores the Rust tokenizer as loaded,
with the changes transformers makes to it at load time), and only the calls StepDiff makes
are offered: encoding text without special tokens, decoding, the special tokens' ids, and
chat templates rendered as transformers renders them (a sandboxed Jinja environment with
the same options, filters and globals). ``tests/test_folder_tokenizer.py`` checks ids,
texts and rendered prompts against transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


class FolderTokenizer:
    """The subset of a transformers fast tokenizer that prompts, answers and scores use."""

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        template = folder / TEMPLATE_FILE
        self.chat_template: str | None = (
            template.read_text(encoding="utf-8")
            if template.is_file()
            else config.get("chat_template")
        )
        self._special = {name: _token_text(config.get(name)) for name in SPECIAL_TOKENS}
        self._clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", False))

    @staticmethod
    def can_read(folder: str | Path) -> bool:
        """Whether ``folder`` holds the files this tokenizer reads."""
        folder = Path(folder)
        return (folder / TOKENIZER_FILE).is_file() and (folder / CONFIG_FILE).is_file()

    # ----- special tokens ---------------------------------------------------------
    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)

    @property
    def bos_token(self) -> str | None:
        return self._special["bos_token"]

    @property
    def eos_token(self) -> str | None:
        return self._special["eos_token"]

    @property
    def pad_token(self) -> str | None:
        return self._special["pad_token"]

    @pad_token.setter
    def pad_token(self, token: str | None) -> None:
        self._special["pad_token"] = token

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    # ----- text <-> ids -------------------------------------------------------------
    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        if add_special_tokens:
            # transformers adds them through its own post-processor settings; StepDiff
            # never asks for them, so this tokenizer does not pretend to.
            raise NotImplementedError("FolderTokenizer encodes without special tokens only")
        return {"input_ids": self._tokenizer.encode(text, add_special_tokens=False).ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        text = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return _clean_up_tokenization(text) if self._clean_up_spaces else text

    def batch_decode(
        self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False
    ) -> list[str]:
        return [self.decode(ids, skip_special_tokens) for ids in sequences]

    # ----- chat templates -----------------------------------------------------------
    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
    ) -> str:
        if tokenize:  # StepDiff tokenises rendered prompts itself, around the video slots
            raise NotImplementedError("FolderTokenizer renders chat templates as text only")
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template")
        text = self._template.render(
            messages=messages,
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **{name: token for name, token in self._special.items() if token is not None},
        )
        return text

    @cached_property
    def _template(self) -> Any:
        return _compile_chat_template(self.chat_template)


def _token_text(value: object) -> str | None:
    """A special token of ``tokenizer_config.json``: a string, or an AddedToken's dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _compile_chat_template(template: str) -> Any:
    """The template compiled the way transformers compiles chat templates: untrusted code,
    so sandboxed; blocks trimmed; ``tojson`` without HTML escaping; ``raise_exception``
    and ``strftime_now`` available."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: object,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return environment.from_string(template)


def _clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: no space before punctuation and contractions."""
    for before, after in (
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ):  # fmt: skip
        text = text.replace(before, after)
    return text
