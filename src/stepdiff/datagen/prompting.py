"""Versioned prompts for data generation, and parsers for the LLM's replies.

Prompts live in ``datagen/prompts/<name>_v<N>.txt`` (format in that folder's README);
every generated record stores the prompt's :attr:`Prompt.id` so results can be traced
to the exact text. Replies from small or chatty LLMs vary in layout, so the parsers
accept the common styles ("Q1:", "1.", "Question 1:", "**Q:**", a JSON list) and report
a one-line reason when nothing usable is there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stepdiff.errors import ConfigError, DataFormatError

_SECTION = re.compile(r"^\[(system|user|follow_up)\]\s*$", re.MULTILINE)
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9_]+)_v(?P<version>\d+)\.txt$")


# --- prompts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One version of a prompt: ``messages`` holds (role, template) pairs."""

    name: str
    version: int
    text: str  # the whole file, comments included
    messages: tuple[tuple[str, str], ...]
    # A user turn sent after an incomplete reply ([follow_up]; no placeholders), or None.
    follow_up: str | None = None

    @property
    def id(self) -> str:
        """What generated records store, e.g. ``qa_v1``."""
        return f"{self.name}_v{self.version}"

    @property
    def fields(self) -> frozenset[str]:
        """The placeholders that :func:`render` must fill."""
        return frozenset(f for _, template in self.messages for f in _FIELD.findall(template))


def prompt_dir() -> Path:
    """The folder of packaged prompt files."""
    return Path(str(resources.files("stepdiff.datagen").joinpath("prompts")))


def _versions(name: str, directory: Path) -> dict[int, Path]:
    found = {}
    for path in directory.glob(f"{name}_v*.txt"):
        match = _FILE_NAME.match(path.name)
        if match and match["name"] == name:
            found[int(match["version"])] = path
    return found


def _parse_sections(text: str, source: Path) -> tuple[tuple[str, str], ...]:
    """(role, template) pairs; text before the first section header is a comment."""
    parts = _SECTION.split(text)  # [preamble, role, body, role, body, ...]
    messages = tuple(
        (role, body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)
    )
    if not messages or not any(role == "user" for role, _ in messages):
        raise ConfigError(f"{source}: a prompt file needs a [user] section")
    return messages


def load_prompt(name: str, version: int | None = None, directory: Path | None = None) -> Prompt:
    """Prompt ``name`` at ``version`` (default: the latest) from ``directory`` (default:
    the packaged prompts)."""
    directory = directory or prompt_dir()
    versions = _versions(name, directory)
    if not versions:
        known = sorted(
            {m["name"] for p in directory.glob("*.txt") if (m := _FILE_NAME.match(p.name))}
        )
        raise ConfigError(f"prompt {name!r}: unknown; known prompts: {', '.join(known) or 'none'}")
    version = max(versions) if version is None else version
    if version not in versions:
        available = ", ".join(str(v) for v in sorted(versions))
        raise ConfigError(f"prompt {name!r}: no version {version} (available: {available})")
    path = versions[version]
    text = path.read_text(encoding="utf-8")
    sections = _parse_sections(text, path)
    follow_up = next((body for role, body in sections if role == "follow_up"), None)
    messages = tuple((role, body) for role, body in sections if role != "follow_up")
    return Prompt(name, version, text, messages, follow_up)


def render(prompt: Prompt, **fields: str) -> list[dict[str, str]]:
    """The chat messages of ``prompt`` with every ``{field}`` filled.

    Missing or unexpected fields raise ConfigError (a typo would otherwise leave a
    literal ``{description1}`` in front of the LLM). Values are inserted verbatim.
    """
    missing, extra = prompt.fields - fields.keys(), fields.keys() - prompt.fields
    if missing or extra:
        raise ConfigError(
            f"prompt {prompt.id}: missing fields {sorted(missing)}, unexpected {sorted(extra)}"
        )
    # One pass with a callback, so braces inside the values are never re-interpreted.
    return [
        {"role": role, "content": _FIELD.sub(lambda m: str(fields[m[1]]), template)}
        for role, template in prompt.messages
    ]


# --- reply parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedQA:
    """A QA-generation reply: the summary of differences ("" if none) and the pairs."""

    summary: str
    pairs: list[tuple[str, str]]


_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*$", re.MULTILINE)
# Line prefixes, matched after markdown is stripped. "A"/"Q" need a separator right after
# them (or after their number), so "A pan is used" is not an answer label.
_SUMMARY = re.compile(  # "Summary: ...", or "Summary" alone as a heading
    r"^(?:summary(?: of (?:the )?differences)?|differences?)\s*(?:[:.\-]\s*|$)", re.I
)
_QUESTION = re.compile(r"^(?:q(?:uestion)?\s*\d*\s*[:.)]|\d+\s*[.):](?=\s|$))\s*", re.I)
_ANSWER = re.compile(r"^a(?:nswer)?\s*\d*\s*[:.)]\s*", re.I)
_INLINE_ANSWER = re.compile(r"\s+(?:a(?:nswer)?\s*\d*\s*[:)])\s+", re.I)
_PLACEHOLDER = re.compile(r"<[^<>]*>")  # "<question>", as the prompt's format shows
_HEADING = re.compile(r"^[\w ,/&'-]{1,40}:$")  # "Question-answer pairs:", "Questions:"


def _plain(line: str) -> str:
    """A line without markdown emphasis, heading marks, bullets and quote marks."""
    line = re.sub(r"(\*\*|__|`)", "", line).strip()
    line = re.sub(r"^(?:#+|>|[-*•])\s*", "", line)
    return line.strip()


def _json_values(text: str) -> list[object]:
    """Every JSON list or object that starts at a bracket in ``text``, in order."""
    decoder, values = json.JSONDecoder(), []
    for match in re.finditer(r"[\[{]", text):
        try:
            values.append(decoder.raw_decode(text[match.start() :])[0])
        except ValueError:
            continue
    return values


def _pairs_from_json(items: object) -> list[tuple[str, str]]:
    pairs = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            lowered = {str(k).lower(): v for k, v in item.items()}
            question = str(lowered.get("question", lowered.get("q", ""))).strip()
            answer = str(lowered.get("answer", lowered.get("a", ""))).strip()
            if question and answer:
                pairs.append((question, answer))
    return pairs


def _qa_from_json(text: str) -> ParsedQA | None:
    """A JSON reply: a list of {"question", "answer"} objects, or an object holding a
    "summary" and such a list. None when no JSON of that shape is in ``text``."""
    for value in _json_values(text):
        summary, items = "", value
        if isinstance(value, dict):
            lowered = {str(k).lower(): v for k, v in value.items()}
            summary = str(lowered.get("summary", "")).strip()
            items = next((v for v in lowered.values() if isinstance(v, list)), [])
        if pairs := _pairs_from_json(items):
            return ParsedQA(summary, pairs)
    return None


def _qa_from_lines(text: str) -> ParsedQA:
    """Labelled lines: a summary, then questions each followed by its answer. Unlabelled
    lines continue the current field, except that a line after a complete question
    ("...?") starts its answer; unlabelled text before the first question is the
    summary when no line is labelled as one."""
    summary: list[str] = []
    preamble: list[str] = []
    pairs: list[tuple[str, str]] = []
    question: list[str] | None = None
    answer: list[str] | None = None
    current: list[str] | None = preamble

    def close() -> None:
        if question and answer and " ".join(answer).strip():
            pairs.append((" ".join(question).strip(), " ".join(answer).strip()))

    for raw in text.splitlines():
        line = _plain(raw)
        if not line:
            continue
        if match := _SUMMARY.match(line):
            close()
            question = answer = None
            current = summary
            summary.append(line[match.end() :])
        elif match := _QUESTION.match(line):
            close()
            body = _QUESTION.sub("", line[match.end() :], count=1)  # "1. Q: ..." -> "..."
            inline = _INLINE_ANSWER.split(body, maxsplit=1)
            question, answer = [inline[0]], ([inline[1]] if len(inline) > 1 else None)
            current = answer if answer is not None else question
        elif match := _ANSWER.match(line):
            if question is not None:
                answer = [line[match.end() :]]
                current = answer
        elif _HEADING.match(line):
            current = None  # a heading ends the field above it
        elif question is not None and current is question and question[-1].endswith("?"):
            answer = [line]  # "1. What tool?" then an unlabelled answer line
            current = answer
        elif current is not None:
            current.append(line)
    close()
    text_summary = " ".join(summary or preamble).strip()
    return ParsedQA(text_summary, pairs)


def parse_qa_reply(text: str, expected: int = 3) -> ParsedQA:
    """The summary and at most ``expected`` (question, answer) pairs of a QA reply.

    Returns whatever valid pairs it finds (fewer than ``expected`` is not an error);
    raises DataFormatError with a one-line reason when no pair parses.
    """
    if not text or not text.strip():
        raise DataFormatError("QA reply is empty")
    body = _FENCE.sub("", text)
    parsed = _qa_from_json(body) or _qa_from_lines(body)
    # A model that copies the format lines back ("Q1: <question>") has said nothing.
    pairs = [p for p in parsed.pairs if not any(_PLACEHOLDER.fullmatch(x) for x in p)]
    summary = "" if _PLACEHOLDER.fullmatch(parsed.summary) else parsed.summary
    if not pairs:
        preview = " ".join(text.split())[:80]
        raise DataFormatError(f"QA reply holds no question-answer pair: {preview!r}")
    return ParsedQA(summary, pairs[:expected])


_DESCRIPTION_PREFIX = re.compile(
    r"^(?:(?:sure|okay|ok|certainly)[,!.]?\s*)?(?:here(?:'s| is) (?:the |a |my )?)?"
    r"(?:(?:step |clip |video |merged |final )?description)(?: of the clip)?\s*[:\-]\s*",
    re.I,
)


def parse_description_reply(text: str) -> str:
    """The description in an aggregation reply, as one line: markdown, code fences and
    a leading "Description:" (or "Here is the description:") are dropped."""
    lines = [_plain(line) for line in _FENCE.sub("", text or "").splitlines()]
    joined = " ".join(line for line in lines if line)
    description = _DESCRIPTION_PREFIX.sub("", joined, count=1).strip().strip('"').strip()
    if not description:
        raise DataFormatError("description reply is empty")
    return description
