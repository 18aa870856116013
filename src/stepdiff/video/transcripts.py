"""Narration of a clip from the transcript files beside its video: SubRip (.srt), WebVTT
(.vtt, as HowTo100M ships subtitles) or SynthKitchen's .json. Cues overlapping the clip's
segment make its narration; undecodable bytes are replaced, never fatal."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from stepdiff.video.clip import ClipRef

_TIME = r"(\d+):(\d\d):(\d\d)[.,](\d{3})"
_CUE = re.compile(
    rf"(?:{_TIME}|(\d\d):(\d\d)[.,](\d{{3}}))\s*-->\s*(?:{_TIME}|(\d\d):(\d\d)[.,](\d{{3}}))"
)


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _seconds(parts: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis, m2, s2, ms2 = parts
    if hours is None:  # WebVTT allows MM:SS.mmm
        return int(m2) * 60 + int(s2) + int(ms2) / 1000
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse_subtitles(text: str) -> list[Cue]:
    """Cues of an .srt or .vtt file (tags like <c> and cue settings dropped)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.strip().splitlines()
        for index, line in enumerate(lines):
            match = _CUE.search(line)
            if match:
                groups = match.groups()
                words = " ".join(re.sub(r"<[^>]+>", "", x).strip() for x in lines[index + 1 :])
                if words:
                    cues.append(Cue(_seconds(groups[:7]), _seconds(groups[7:]), words))
                break
    return cues


def read_cues(path: Path) -> list[Cue]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".json":
        return [Cue(s["start"], s["end"], s["text"]) for s in json.loads(text)["sentences"]]
    return parse_subtitles(text)


def clip_narration(clip: ClipRef) -> str:
    """The narration overlapping ``clip`` from ``<video stem>.{srt,vtt,json}``; "" if none."""
    for suffix in (".srt", ".vtt", ".json"):
        path = clip.path.with_suffix(suffix)
        if path.is_file():
            start = clip.start if clip.start is not None else 0.0
            end = clip.end if clip.end is not None else float("inf")
            cues = read_cues(path)
            return " ".join(c.text for c in cues if c.start < end and c.end > start)
    return ""
