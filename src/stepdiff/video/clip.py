"""Clip references: a video file plus an optional segment, and official clip ids.

An official StepDiff clip id reads ``<video_uid>_<start>_<end>`` (seconds); uids may
themselves contain ``_``, so ids are split from the right, twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from stepdiff.errors import ClipSpecError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
SEGMENT_SEPARATOR = "@"

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
# START-END: the separating "-" is the one that does not follow an exponent's "e", so
# 1e-9-2e-9 reads as 1e-9 to 2e-9 (ClipRef prints small bounds that way).
_SEGMENT = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*")


@dataclass(frozen=True)
class ClipRef:
    """A video file and an optional segment [start, end] in seconds (None = whole video)."""

    path: Path
    start: float | None = None
    end: float | None = None
    # The official clip id it was resolved from, if any: a label for text-based baselines
    # and reports, not part of the clip's identity.
    clip_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ClipSpecError(f"{self.path}: a segment needs both start and end")
        if self.start is not None:
            assert self.end is not None
            if not (math.isfinite(self.start) and math.isfinite(self.end)):
                raise ClipSpecError(f"{self.path}: segment bounds must be finite numbers")
            if self.start < 0 or self.end <= self.start:
                raise ClipSpecError(
                    f"{self.path}: segment {self.start}-{self.end} must satisfy 0 <= start < end"
                )

    @property
    def has_segment(self) -> bool:
        return self.start is not None

    def __str__(self) -> str:
        if not self.has_segment:
            return str(self.path)
        return f"{self.path}{SEGMENT_SEPARATOR}{self.start:g}-{self.end:g}"


@dataclass(frozen=True)
class ClipId:
    """A parsed official clip id."""

    video_uid: str
    start: float
    end: float


def parse_clip_id(clip_id: str) -> ClipId:
    """Split ``<video_uid>_<start>_<end>`` from the right (uids may contain ``_``)."""
    parts = clip_id.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        raise ClipSpecError(f"clip id {clip_id!r}: expected <video_uid>_<start>_<end>")
    uid, start_text, end_text = parts
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        raise ClipSpecError(
            f"clip id {clip_id!r}: start {start_text!r} and end {end_text!r} must be numbers"
        ) from None
    if not (0 <= start < end) or not math.isfinite(end):
        raise ClipSpecError(f"clip id {clip_id!r}: needs 0 <= start < end")
    return ClipId(uid, start, end)


def _parse_segment(spec: str, segment: str) -> tuple[float, float]:
    """(start, end) in seconds from ``START-END``, e.g. ``2.5-9`` or ``1e-3-2e-3``."""
    match = _SEGMENT.fullmatch(segment)
    if match is None:
        raise ClipSpecError(
            f"clip {spec!r}: segment {segment!r} must read START-END in seconds, e.g. 2.5-9"
        )
    return float(match.group(1)), float(match.group(2))


def find_video(video_dir: Path, video_uid: str) -> Path:
    """The file of ``video_uid`` in ``video_dir`` (any common video extension)."""
    for ext in VIDEO_EXTENSIONS:
        candidate = video_dir / f"{video_uid}{ext}"
        if candidate.is_file():
            return candidate
    raise ClipSpecError(
        f"video {video_uid!r} not found in {video_dir} (tried {', '.join(VIDEO_EXTENSIONS)})"
    )


def resolve_clip(spec: str | Path | ClipRef, video_dir: Path | None = None) -> ClipRef:
    """Turn a user's clip specification into a ClipRef.

    Accepted forms: ``path/to/video.mp4`` (whole video), ``path/to/video.mp4@2.5-9``
    (segment in seconds), or an official clip id ``<uid>_<start>_<end>`` resolved in
    ``video_dir``.
    """
    if isinstance(spec, ClipRef):
        return spec
    text = str(spec)
    if Path(text).is_file():
        return ClipRef(Path(text))
    path_text, sep, segment = text.rpartition(SEGMENT_SEPARATOR)
    if sep and Path(path_text).is_file():
        start, end = _parse_segment(text, segment)
        return ClipRef(Path(path_text), start, end)
    if video_dir is not None:
        clip_id = parse_clip_id(text)
        path = find_video(Path(video_dir), clip_id.video_uid)
        return ClipRef(path, clip_id.start, clip_id.end, clip_id=text)
    missing = path_text if sep else text
    raise ClipSpecError(
        f"clip {text!r}: file {missing!r} not found (give a video path, PATH@START-END, "
        "or a clip id with --video-dir)"
    )
