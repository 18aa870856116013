"""The official StepDiff release formats: typed records, strict readers, an atomic writer.

Ground truth (JSONL, one object per line, facebookresearch/stepdiff ``data/``):

- DiffCap  ``{"reference": clip, "candidate": clip, "category": str, "text": [str, ...]}``
- DiffMCQ  ``{"difference": str, "category": str, "options": [[ref, cand] x 4],
  "answer": [ref, cand]}``
- DiffRank ``{"reference": clip, "targets": [clip x 4], "category": str, "scores": [int x 4]}``

Predictions, one line per ground-truth line in the same order: DiffCap
``{"generated_text": str}``; DiffMCQ and DiffRank ``{"scores": [float x 4]}``.

Every problem is reported as one :class:`~stepdiff.errors.DataFormatError` line naming
the file, the line and the field, e.g.
``diffmcq.jsonl:17: field 'answer': ["a_1_2","b_1_2"] is not among the 4 options``.
Records validate themselves on construction too, so items built in code obey the same
rules as items read from files (their errors just lack the file and line).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from stepdiff.data.categories import (
    CATEGORIES,
    MAX_RANK_SCORE,
    MIN_RANK_SCORE,
    NUM_CHOICES,
    Task,
)
from stepdiff.errors import ClipSpecError, DataFormatError
from stepdiff.video.clip import parse_clip_id

__all__ = [
    "CaptionPrediction",
    "DiffCapItem",
    "DiffMCQItem",
    "DiffRankItem",
    "FieldError",
    "GroundTruthItem",
    "Prediction",
    "ScorePrediction",
    "atomic_writer",
    "read_diffcap",
    "read_diffmcq",
    "read_diffrank",
    "read_ground_truth",
    "read_jsonl",
    "read_predictions",
    "write_atomic",
    "write_jsonl",
]


class FieldError(DataFormatError):
    """One field of one record is wrong. Readers prefix the file and line number."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


# --- field checks ---------------------------------------------------------------------


def _show(value: object, limit: int = 80) -> str:
    """A short JSON rendering of an offending value for an error message."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    except RecursionError:  # nested nearly as deep as the decoder goes; repr recurses too
        return f"(a deeply nested {_type_name(value)})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: object) -> str:
    """The JSON name of ``value``'s type (what a user wrote in the file)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_str(value: object, field: str, *, nonblank: bool = False) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {_type_name(value)} {_show(value)}")
    if nonblank and not value.strip():
        raise FieldError(field, "must not be empty")
    return value


def _check_list(value: object, field: str, length: int | None = None) -> tuple[Any, ...]:
    """``value`` as a tuple; it must be a JSON array (of ``length`` items when given)."""
    if not isinstance(value, list | tuple):
        raise FieldError(field, f"expected an array, got {_type_name(value)} {_show(value)}")
    if length is not None and len(value) != length:
        raise FieldError(field, f"expected {length} entries, got {len(value)}")
    return tuple(value)


def _check_clip_id(value: object, field: str) -> str:
    clip_id = _check_str(value, field)
    try:
        parse_clip_id(clip_id)
    except ClipSpecError as error:
        raise FieldError(field, str(error)) from None
    return clip_id


def _check_category(value: object) -> str:
    category = _check_str(value, "category")
    if category not in CATEGORIES:
        known = ", ".join(repr(name) for name in CATEGORIES)
        raise FieldError("category", f"unknown category {category!r} (known: {known})")
    return category


def _check_number(value: object, field: str) -> float:
    # bool is an int subclass in Python, but `true` is no score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, f"expected a number, got {_type_name(value)} {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise FieldError(field, f"{_show(value)} is not a finite number")
    return number


def _check_rank_score(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected an integer, got {_type_name(value)} {_show(value)}")
    if not MIN_RANK_SCORE <= value <= MAX_RANK_SCORE:
        raise FieldError(field, f"{value} is outside {MIN_RANK_SCORE}..{MAX_RANK_SCORE}")
    return value


def _check_pair(value: object, field: str) -> tuple[str, str]:
    pair = _check_list(value, field, 2)
    return (_check_clip_id(pair[0], f"{field}[0]"), _check_clip_id(pair[1], f"{field}[1]"))


def _field(obj: Mapping[str, Any], name: str) -> Any:
    if name not in obj:
        raise FieldError(name, "missing")
    return obj[name]


def _set(record: object, name: str, value: object) -> None:
    """Store a normalised value on a frozen dataclass (lists become tuples)."""
    object.__setattr__(record, name, value)


# --- records --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffCapItem:
    """A DiffCap item: describe how ``candidate`` differs from ``reference`` in ``category``.

    ``text`` holds the reference captions ("<candidate> instead of <reference>").
    """

    reference: str
    candidate: str
    category: str
    text: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_clip_id(self.reference, "reference")
        _check_clip_id(self.candidate, "candidate")
        _check_category(self.category)
        text = _check_list(self.text, "text")
        if not text:
            raise FieldError("text", "needs at least one reference caption")
        for i, caption in enumerate(text):
            # pycocoevalcap's CIDEr cannot score a corpus whose references have no n-grams.
            _check_str(caption, f"text[{i}]", nonblank=True)
        _set(self, "text", text)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DiffCapItem:
        return cls(*(_field(obj, name) for name in ("reference", "candidate", "category", "text")))

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "category": self.category,
            "text": list(self.text),
        }


@dataclass(frozen=True)
class DiffMCQItem:
    """A DiffMCQ item: which of 4 (reference, candidate) pairs shows ``difference``.

    Order inside a pair matters: ``(a, b)`` and ``(b, a)`` are different options.
    """

    difference: str
    category: str
    options: tuple[tuple[str, str], ...]
    answer: tuple[str, str]

    def __post_init__(self) -> None:
        _check_str(self.difference, "difference", nonblank=True)
        _check_category(self.category)
        raw_options = _check_list(self.options, "options", NUM_CHOICES)
        options = tuple(_check_pair(pair, f"options[{i}]") for i, pair in enumerate(raw_options))
        answer = _check_pair(self.answer, "answer")
        if answer not in options:
            raise FieldError(
                "answer", f"{_show(list(answer))} is not among the {len(options)} options"
            )
        _set(self, "options", options)
        _set(self, "answer", answer)

    @property
    def gold_index(self) -> int:
        """Position of ``answer`` in ``options`` (the first one, as ``list.index`` in the
        official script, should an option be repeated)."""
        return self.options.index(self.answer)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DiffMCQItem:
        names = ("difference", "category", "options", "answer")
        return cls(*(_field(obj, name) for name in names))

    def to_json(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "category": self.category,
            "options": [list(pair) for pair in self.options],
            "answer": list(self.answer),
        }


@dataclass(frozen=True)
class DiffRankItem:
    """A DiffRank item: annotator similarity ``scores`` (0..5, 5 = most similar) of 4
    ``targets`` to ``reference`` with respect to ``category``."""

    reference: str
    targets: tuple[str, ...]
    category: str
    scores: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_clip_id(self.reference, "reference")
        targets = _check_list(self.targets, "targets", NUM_CHOICES)
        for i, target in enumerate(targets):
            _check_clip_id(target, f"targets[{i}]")
        _check_category(self.category)
        scores = _check_list(self.scores, "scores", NUM_CHOICES)
        scores = tuple(_check_rank_score(s, f"scores[{i}]") for i, s in enumerate(scores))
        _set(self, "targets", targets)
        _set(self, "scores", scores)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DiffRankItem:
        names = ("reference", "targets", "category", "scores")
        return cls(*(_field(obj, name) for name in names))

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "targets": list(self.targets),
            "category": self.category,
            "scores": list(self.scores),
        }


@dataclass(frozen=True)
class CaptionPrediction:
    """A DiffCap prediction: the generated difference caption (may be empty)."""

    generated_text: str

    def __post_init__(self) -> None:
        _check_str(self.generated_text, "generated_text")

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CaptionPrediction:
        return cls(_field(obj, "generated_text"))

    def to_json(self) -> dict[str, Any]:
        return {"generated_text": self.generated_text}


@dataclass(frozen=True)
class ScorePrediction:
    """A DiffMCQ or DiffRank prediction: one finite score per option / target
    (higher = more likely the answer / more similar to the reference)."""

    scores: tuple[float, ...]

    def __post_init__(self) -> None:
        scores = _check_list(self.scores, "scores", NUM_CHOICES)
        _set(self, "scores", tuple(_check_number(s, f"scores[{i}]") for i, s in enumerate(scores)))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ScorePrediction:
        return cls(_field(obj, "scores"))

    def to_json(self) -> dict[str, Any]:
        return {"scores": list(self.scores)}


GroundTruthItem = DiffCapItem | DiffMCQItem | DiffRankItem
Prediction = CaptionPrediction | ScorePrediction

_GT_TYPES: dict[Task, type[DiffCapItem] | type[DiffMCQItem] | type[DiffRankItem]] = {
    Task.DIFFCAP: DiffCapItem,
    Task.DIFFMCQ: DiffMCQItem,
    Task.DIFFRANK: DiffRankItem,
}
_PREDICTION_TYPES: dict[Task, type[CaptionPrediction] | type[ScorePrediction]] = {
    Task.DIFFCAP: CaptionPrediction,
    Task.DIFFMCQ: ScorePrediction,
    Task.DIFFRANK: ScorePrediction,
}

# --- reading --------------------------------------------------------------------------

T = TypeVar("T")


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory, expected a JSONL file") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read ({error.strerror})") from None
    lines = text.splitlines()
    # Trailing blank lines are harmless; a blank line *between* records would silently
    # shift the alignment of predictions with the ground truth, so that is an error.
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


# Python refuses to convert longer integers (sys.get_int_max_str_digits, a guard against
# quadratic conversion time); this bound holds whatever the interpreter is set to.
MAX_INT_DIGITS = 4300


class _TooLarge(ValueError):
    """A JSON value beyond what the reader takes; ``_parse_line`` adds file and line."""


def _parse_int(text: str) -> int:
    """A JSON integer literal as an int, refusing absurdly long ones."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _TooLarge(f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


def _parse_line(line: str, where: str) -> Any:
    """One JSONL line as a Python value; ``where`` (file:line) prefixes any error."""
    try:
        return json.loads(line, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"{where}: malformed JSON: {error.msg} (column {error.colno})"
        ) from None
    except _TooLarge as error:
        raise DataFormatError(f"{where}: unreadable JSON: {error}") from None
    except RecursionError:
        # The decoder recurses once per nested array or object.
        raise DataFormatError(f"{where}: unreadable JSON: nested too deeply") from None


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file with their 1-based line numbers.

    Raises DataFormatError for a missing, empty or non-UTF-8 file, a malformed line,
    a line that is not a JSON object, or a blank line before the last record.
    """
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise DataFormatError(f"{path}: the file is empty (expected one JSON object per line)")
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataFormatError(
                f"{path}:{lineno}: blank line (blank lines are only allowed at the end)"
            )
        obj = _parse_line(line, f"{path}:{lineno}")
        if not isinstance(obj, dict):
            raise DataFormatError(
                f"{path}:{lineno}: expected a JSON object, got {_type_name(obj)} {_show(obj)}"
            )
        records.append((lineno, obj))
    return records


def _parse_records(
    path: Path, rows: list[tuple[int, dict[str, Any]]], parse: Callable[[dict[str, Any]], T]
) -> list[T]:
    records = []
    for lineno, obj in rows:
        try:
            records.append(parse(obj))
        except FieldError as error:
            raise DataFormatError(f"{path}:{lineno}: {error}") from None
    return records


def read_ground_truth(path: str | Path, task: Task | str) -> list[Any]:
    """The items of a ground-truth file of ``task`` (a list of that task's item type)."""
    path = Path(path)
    item_type = _GT_TYPES[Task(task)]
    return _parse_records(path, read_jsonl(path), item_type.from_json)


def read_diffcap(path: str | Path) -> list[DiffCapItem]:
    """The items of an official DiffCap ground-truth file."""
    return read_ground_truth(path, Task.DIFFCAP)


def read_diffmcq(path: str | Path) -> list[DiffMCQItem]:
    """The items of an official DiffMCQ ground-truth file."""
    return read_ground_truth(path, Task.DIFFMCQ)


def read_diffrank(path: str | Path) -> list[DiffRankItem]:
    """The items of an official DiffRank ground-truth file."""
    return read_ground_truth(path, Task.DIFFRANK)


def read_predictions(
    path: str | Path, task: Task | str, expected_count: int | None = None
) -> list[Any]:
    """The predictions of a file for ``task``: :class:`CaptionPrediction` for DiffCap,
    :class:`ScorePrediction` otherwise.

    ``expected_count`` is the number of ground-truth items: the official script pairs
    predictions with items by position, so any other length is an error.
    """
    path = Path(path)
    rows = read_jsonl(path)
    if expected_count is not None and len(rows) != expected_count:
        noun = "line" if len(rows) == 1 else "lines"
        raise DataFormatError(
            f"{path}: {len(rows)} {noun} but the ground truth has {expected_count}"
        )
    return _parse_records(path, rows, _PREDICTION_TYPES[Task(task)].from_json)


# --- writing --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one
    ``os.replace``, on any error it is removed. Readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); results are meant to be shared.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return Path(path)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """Write records (objects with ``to_json()``, or plain dicts) as JSONL, atomically.

    Records are streamed into the temporary file, so an error half-way (or an
    interrupt) leaves any previous ``path`` untouched.
    """
    with atomic_writer(path) as handle:
        for index, record in enumerate(records):
            obj = record.to_json() if hasattr(record, "to_json") else record
            try:
                line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
            except ValueError:
                raise DataFormatError(
                    f"{path}: record {index + 1} holds NaN or infinity, which JSON cannot store"
                ) from None
            handle.write(line + "\n")
    return Path(path)
