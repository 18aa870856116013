"""Record types of the data-generation pipeline and the clip list it starts from.

Every stage reads the previous stage's JSONL and writes its own (one object a line):

=====================  ===================================================================
``descriptions.jsonl`` ``{clip_id, video_uid, keystep, description, sources{tags,
                       captions, narration, metadata}, prompt_id, model, seed, error}``
``pairs.jsonl``        ``{pair_id, reference, candidate, keystep, similarity}``
``qa_raw.jsonl``       ``{pair_id, reference, candidate, summary, qa[{question, answer}],
                       raw, error, prompt_id, model, seed}``
``qa.jsonl``           ``{qa_id, pair_id, reference, candidate, question, answer, keystep,
                       source_clips[ref, cand], prompt_id, model, seed}``
``interleaved.jsonl``  ``{video_uid, clips[...], narrations[...]}``
``single_video.jsonl`` ``{clip_id, video_uid, question, answer, source}``
=====================  ===================================================================

Records are plain dicts on disk; the dataclasses here build them in one place so that
every writer agrees on field names and order (the order is part of the byte-identical
guarantee of resumed and sharded runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from stepdiff.data.formats import FieldError, read_jsonl
from stepdiff.errors import ClipSpecError, DataFormatError
from stepdiff.synthkitchen.world import ClipSpec
from stepdiff.video.clip import VIDEO_EXTENSIONS, parse_clip_id

# --- the clip list ---------------------------------------------------------------------

_SPEC_FIELDS = frozenset(f.name for f in fields(ClipSpec))


@dataclass(frozen=True)
class ClipEntry:
    """One clip of the input list: a keystep segment of a source video.

    ``spec`` holds SynthKitchen ground truth when the line carries every ClipSpec field
    (SynthKitchen's ``clips.jsonl``); ``metadata`` is free text a clip list may provide
    (an HT-Step-style keystep label is always available as ``keystep``).
    """

    clip_id: str
    video_uid: str
    start: float
    end: float
    keystep: str
    split: str | None = None
    video: Path | None = None  # an explicit video file (else looked up by uid)
    metadata: str | None = None
    spec: ClipSpec | None = None


def _entry(obj: Mapping[str, Any], folder: Path) -> ClipEntry:
    for name in ("clip_id", "keystep"):
        if name not in obj:
            raise FieldError(name, "missing")
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise FieldError(name, "expected a non-empty string")
    try:
        parsed = parse_clip_id(obj["clip_id"])
    except ClipSpecError as error:
        raise FieldError("clip_id", str(error)) from None
    spec = None
    if _SPEC_FIELDS <= set(obj):
        try:
            spec = ClipSpec.from_dict(obj)
        except (ValueError, TypeError) as error:
            raise FieldError("clip_id", f"not a valid SynthKitchen clip: {error}") from None
    video = obj.get("video")
    if video is not None and not isinstance(video, str):
        raise FieldError("video", "expected a path string")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise FieldError("metadata", "expected a string")
    split = obj.get("split")
    return ClipEntry(
        clip_id=obj["clip_id"],
        video_uid=parsed.video_uid,
        start=parsed.start,
        end=parsed.end,
        keystep=obj["keystep"],
        split=split if isinstance(split, str) else None,
        video=(folder / video) if video else None,
        metadata=metadata,
        spec=spec,
    )


def read_clip_list(path: str | Path, split: str | None = None) -> list[ClipEntry]:
    """The clips of a JSONL clip list (at least ``clip_id`` and ``keystep`` a line;
    optional ``video`` path relative to the list, ``split``, ``metadata``), in file
    order, keeping only ``split`` when given. Bad lines raise one-line errors naming
    ``file:line``."""
    path = Path(path)
    entries: list[ClipEntry] = []
    seen: dict[str, int] = {}
    for lineno, obj in read_jsonl(path):
        try:
            entry = _entry(obj, path.parent)
        except FieldError as error:
            raise DataFormatError(f"{path}:{lineno}: {error}") from None
        if entry.clip_id in seen:
            raise DataFormatError(
                f"{path}:{lineno}: clip {entry.clip_id!r} repeats line {seen[entry.clip_id]}"
            )
        seen[entry.clip_id] = lineno
        entries.append(entry)
    if split is None:
        return entries
    chosen = [e for e in entries if e.split == split]
    if not chosen:
        splits = sorted({e.split for e in entries if e.split is not None})
        known = ", ".join(splits) if splits else "none: the list has no 'split' field"
        raise DataFormatError(f"{path}: no clips of split {split!r} (splits: {known})")
    return chosen


def video_path(entry: ClipEntry, video_dir: Path) -> tuple[Path, bool]:
    """Where ``entry``'s video is, and whether the file exists. A missing video still
    gets a path (``<video_dir>/<uid>.mp4``): transcripts beside it may exist anyway."""
    if entry.video is not None:
        return entry.video, entry.video.is_file()
    for ext in VIDEO_EXTENSIONS:
        candidate = video_dir / f"{entry.video_uid}{ext}"
        if candidate.is_file():
            return candidate, True
    return video_dir / f"{entry.video_uid}.mp4", False


def default_video_dir(clips_path: Path) -> Path:
    """``videos/`` beside the clip list when it exists (SynthKitchen's layout), else the
    clip list's own folder."""
    folder = clips_path.parent / "videos"
    return folder if folder.is_dir() else clips_path.parent


# --- stage records ---------------------------------------------------------------------


@dataclass(frozen=True)
class DescriptionRecord:
    """A clip's aggregated step description (``None`` with ``error`` when it failed)."""

    clip_id: str
    video_uid: str
    keystep: str
    description: str | None
    sources: dict[str, Any]
    prompt_id: str
    model: str
    seed: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairRecord:
    """Two clips of one keystep from distinct videos with similar descriptions."""

    pair_id: str
    reference: str
    candidate: str
    keystep: str
    similarity: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_pair_id(reference: str, candidate: str) -> str:
    """``<reference>|<candidate>``: order matters (the candidate is compared against the
    reference), and ``|`` never occurs in clip ids."""
    return f"{reference}|{candidate}"


@dataclass(frozen=True)
class QARawRecord:
    """The generator's reply for one pair, parsed (``qa`` empty and ``error`` set when
    nothing parsed)."""

    pair_id: str
    reference: str
    candidate: str
    summary: str
    qa: list[dict[str, Any]]  # question, answer (+ answer_probability, alternative)
    raw: str
    error: str | None
    prompt_id: str
    model: str
    seed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QARecord:
    """One kept question-answer pair about a (reference, candidate) pair."""

    qa_id: str
    pair_id: str
    reference: str
    candidate: str
    question: str
    answer: str
    keystep: str
    source_clips: list[str]
    prompt_id: str
    model: str
    seed: int
    # A soft target (closed-form answers): the answer's probability, the rest the
    # alternative's; written only when set.
    answer_probability: float | None = None
    alternative: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if k not in SOFT_FIELDS or v is not None}


SOFT_FIELDS = ("answer_probability", "alternative")


@dataclass(frozen=True)
class InterleavedRecord:
    """Consecutive clips of one source video with their narrations (time order)."""

    video_uid: str
    clips: list[str]
    narrations: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SingleVideoRecord:
    """A single-clip caption or question (for single-video VCLM training)."""

    clip_id: str
    video_uid: str
    question: str
    answer: str
    source: str  # "description" or "metadata"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- reading stage outputs -------------------------------------------------------------


def read_records(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of a stage's JSONL output (an empty file is an empty list: a stage
    may legitimately produce nothing), each checked to hold ``required`` fields."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (run the stage that writes it first)")
    if path.stat().st_size == 0:
        return []
    records = []
    for lineno, obj in read_jsonl(path):
        missing = [name for name in required if name not in obj]
        if missing:
            raise DataFormatError(f"{path}:{lineno}: field {missing[0]!r}: missing")
        records.append(obj)
    return records
