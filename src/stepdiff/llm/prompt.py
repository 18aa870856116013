"""Prompt formats with two video slots, and their tokenisation.

The paper's prompt (Llama-2-chat format) is used verbatim for Llama-2-chat models; other
chat models get their own chat template carrying the same system text; models without a
chat template get a plain-text layout. A rendered prompt marks each video slot with
VIDEO_SLOT; tokenisation replaces each slot by ``num_video_tokens`` copies of
VIDEO_TOKEN_ID, a placeholder id outside every vocabulary that the model later swaps for
projected video embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepdiff.errors import ConfigError

VIDEO_SLOT = "<|video|>"
VIDEO_TOKEN_ID = -200  # never a real token id; see stepdiff.model.splice
SYSTEM_TEXT = (
    "You are a helpful AI assistant that answers questions about a pair of videos. "
    "Answer in a single sentence."
)
VIDEOS_TEXT = f"Here is the first video: {VIDEO_SLOT}. Here is the second video: {VIDEO_SLOT}."
# Single-video samples (the VCLM baseline's training data) show one video.
SINGLE_VIDEO_TEXT = f"Here is the video: {VIDEO_SLOT}."
PROMPT_FORMATS = ("auto", "llama2", "chat", "plain")


@dataclass(frozen=True)
class PromptFormat:
    """Renders a question (and optionally its answer) after a system text.

    ``context`` is what the system text says about the videos: by default the two video
    slots; text-only baselines pass descriptions of the videos, or nothing.
    """

    kind: str  # "llama2" | "chat" | "plain"
    tokenizer: object

    def _messages(self, question: str, context: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": f"{SYSTEM_TEXT} {context}".strip()},
            {"role": "user", "content": question},
        ]

    def prompt(self, question: str, context: str = VIDEOS_TEXT) -> str:
        """Everything before the answer (with the VIDEO_SLOT markers of ``context``)."""
        system = f"{SYSTEM_TEXT} {context}".strip()
        if self.kind == "llama2":
            # The paper's prompt, character for character.
            return f"<s> [INST] <<SYS>> {system} <</SYS>> {question} [/INST] "
        if self.kind == "chat":
            return self.tokenizer.apply_chat_template(
                self._messages(question, context), tokenize=False, add_generation_prompt=True
            )
        return f"{system}\nQuestion: {question}\nAnswer: "

    def answer(self, question: str, answer: str, context: str = VIDEOS_TEXT) -> str:
        """The answer as the model should produce it, with the format's end marker."""
        if self.kind == "llama2":
            return f"{answer} </s>"
        if self.kind == "chat":
            messages = self._messages(question, context)
            messages.append({"role": "assistant", "content": answer})
            full = self.tokenizer.apply_chat_template(messages, tokenize=False)
            prompt = self.prompt(question, context)
            if not full.startswith(prompt):
                raise ConfigError(
                    "chat template renders the answer in a way that changes the prompt"
                )
            return full[len(prompt) :]
        return f"{answer}{self.tokenizer.eos_token}"


def select_prompt_format(kind: str, model_name: str, tokenizer: object) -> PromptFormat:
    """Pick the prompt format: ``auto`` uses the paper's for Llama-2-chat models."""
    if kind not in PROMPT_FORMATS:
        raise ConfigError(f"prompt_format {kind!r}: expected one of {', '.join(PROMPT_FORMATS)}")
    if kind == "auto":
        lowered = model_name.lower().replace("_", "-")
        if "llama-2" in lowered and "chat" in lowered:
            kind = "llama2"
        elif getattr(tokenizer, "chat_template", None):
            kind = "chat"
        else:
            kind = "plain"
    return PromptFormat(kind=kind, tokenizer=tokenizer)


@dataclass(frozen=True)
class TokenisedSample:
    """Token ids of one (question, answer) sample; answer ids may be empty (inference)."""

    prompt_ids: list[int]
    answer_ids: list[int]

    def ids_and_labels(self) -> tuple[list[int], list[bool]]:
        """All ids, and which of them carry loss (the answer's)."""
        ids = self.prompt_ids + self.answer_ids
        return ids, [False] * len(self.prompt_ids) + [True] * len(self.answer_ids)


@dataclass(frozen=True)
class InterleavedSample:
    """A (video, narration, video, narration, ...) sequence; loss on the narrations."""

    ids: list[int]
    is_target: list[bool]

    @property
    def answer_ids(self) -> list[int]:
        return [i for i, target in zip(self.ids, self.is_target, strict=True) if target]

    def ids_and_labels(self) -> tuple[list[int], list[bool]]:
        return self.ids, self.is_target


def _text_ids(tokenizer: object, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenise_sample(
    fmt: PromptFormat,
    question: str,
    answer: str | None,
    num_video_tokens: int,
    *,
    answer_end: bool = True,
    context: str = VIDEOS_TEXT,
) -> TokenisedSample:
    """Tokenise prompt and answer; each video slot becomes ``num_video_tokens`` placeholders.

    ``answer_end=False`` leaves out the format's end marker (used to score a bare word
    such as "YES").
    """
    pieces = fmt.prompt(question, context).split(VIDEO_SLOT)
    if len(pieces) - 1 != context.count(VIDEO_SLOT):
        raise ConfigError(f"question {question!r} must not contain the marker {VIDEO_SLOT}")
    prompt_ids: list[int] = []
    for index, piece in enumerate(pieces):
        if index:
            prompt_ids.extend([VIDEO_TOKEN_ID] * num_video_tokens)
        prompt_ids.extend(_text_ids(fmt.tokenizer, piece))
    if answer is None:
        return TokenisedSample(prompt_ids, [])
    answer_text = fmt.answer(question, answer, context) if answer_end else answer
    return TokenisedSample(prompt_ids, _text_ids(fmt.tokenizer, answer_text))


def tokenise_interleaved(
    tokenizer: object, narrations: list[str], num_video_tokens: int
) -> InterleavedSample:
    """Each video's placeholders followed by its narration, then the end-of-text token.

    The interleaved stage (paper Sec. 3.3) teaches the projector to produce tokens the
    LLM can talk about: it predicts each clip's narration from the clips so far. No chat
    template: this is language modelling over a transcript, not an instruction.
    """
    ids: list[int] = []
    is_target: list[bool] = []
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        ids.append(bos)
        is_target.append(False)
    for index, narration in enumerate(narrations):
        if not narration.strip():
            raise ValueError(f"narration {index} is empty, so it would carry no loss")
        ids.extend([VIDEO_TOKEN_ID] * num_video_tokens)
        is_target.extend([False] * num_video_tokens)
        text = _text_ids(tokenizer, f" {narration.strip()}")
        ids.extend(text)
        is_target.extend([True] * len(text))
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.append(eos)
        is_target.append(True)
    return InterleavedSample(ids, is_target)
