"""Per-clip evidence for step descriptions (paper Sec. 3.2): object tags, narration,
metadata and action captions, each from a pluggable source.

A source that fails for one clip (no video file, an undecodable video, no audio, silent
audio, a transcript that is not UTF-8) leaves its field empty and records an *issue*
("video_missing", "narration_non_utf8", ...); issues are counted in the stage report
and never stop the run. A model that cannot load, on the contrary, stops it at once
(every clip would fail the same way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepdiff.datagen.records import ClipEntry, video_path
from stepdiff.errors import VideoError, first_line
from stepdiff.video.clip import ClipRef
from stepdiff.video.transcripts import Cue, parse_subtitles

ASR_MODES = ("none", "transcripts", "whisper")
MAX_TAGS = 8  # the tagger sorts by score; more than this is noise for an LLM prompt


@dataclass
class ClipEvidence:
    """What the sources found for one clip (the fields of ``StepSources``)."""

    tags: list[tuple[str, float]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    narration: str = ""
    metadata: str = ""
    issues: list[str] = field(default_factory=list)  # why a source gave nothing

    def to_json(self) -> dict[str, Any]:
        return {
            "tags": [[name, score] for name, score in self.tags],
            "captions": list(self.captions),
            "narration": self.narration,
            "metadata": self.metadata,
        }


# --- narration from transcript files ---------------------------------------------------


def _decode(data: bytes, issues: list[str]) -> str:
    """UTF-8 text, or cp1252 (the usual culprit) with an issue recorded: subtitles
    from the web are often Windows-encoded, and replacing every accent with U+FFFD would
    feed the LLM broken words."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        issues.append("narration_non_utf8")
        return data.decode("cp1252", errors="replace")


def _overlapping(cues: list[Cue], clip: ClipRef) -> str:
    start = clip.start if clip.start is not None else 0.0
    end = clip.end if clip.end is not None else float("inf")
    return " ".join(c.text for c in cues if c.start < end and c.end > start)


def transcript_narration(clip: ClipRef, clip_id: str, issues: list[str]) -> str:
    """The narration of ``clip`` from ``<video stem>.{srt,vtt,json}`` ("" if none).

    SynthKitchen's JSON transcripts attribute each sentence to a clip id; those
    attributions win over time overlap, because a cook keeps talking about a step for a
    few seconds after its segment ends.
    """
    for suffix in (".srt", ".vtt", ".json"):
        path = clip.path.with_suffix(suffix)
        if not path.is_file():
            continue
        text = _decode(path.read_bytes(), issues)
        if suffix != ".json":
            return _overlapping(parse_subtitles(text), clip)
        try:
            sentences = json.loads(text)["sentences"]
            if any("clip_id" in s for s in sentences):
                return " ".join(s["text"] for s in sentences if s.get("clip_id") == clip_id)
            cues = [Cue(float(s["start"]), float(s["end"]), str(s["text"])) for s in sentences]
        except (ValueError, KeyError, TypeError):
            issues.append("transcript_malformed")
            return ""
        return _overlapping(cues, clip)
    issues.append("no_transcript")
    return ""


# --- metadata --------------------------------------------------------------------------


def clip_metadata(entry: ClipEntry) -> str:
    """What the clip list says about the clip: SynthKitchen ground truth (the cook's
    full narration script), else the list's ``metadata`` text, else the keystep label
    (all HT-Step gives)."""
    if entry.spec is not None:
        from stepdiff.synthkitchen.render import describe_spec

        return describe_spec(entry.spec)
    if entry.metadata:
        return entry.metadata
    return f"Keystep: {entry.keystep}."


# --- captions --------------------------------------------------------------------------


class FrameCaptioner:
    """Action captions from a Hugging Face image-captioning model (a folder, or an id in
    the local cache: nothing is downloaded), run on the clip's middle frame.

    Any model that ``AutoModelForImageTextToText`` loads and that captions an image
    without a text prompt works: BLIP, GIT, ViT-GPT2 (VisionEncoderDecoder). No such
    model ships offline, so captions are off unless asked for (``--captioner MODEL``).
    The model is loaded explicitly rather than through ``pipeline("image-to-text")``,
    a task that transformers 5 removed.
    """

    def __init__(self, model: str, max_new_tokens: int = 30) -> None:
        self.model_id = model
        self.max_new_tokens = max_new_tokens
        self._loaded: tuple[Any, Any, Any] | None = None

    def load(self) -> tuple[Any, Any, Any]:
        """(model, image processor, tokenizer); ModelLoadError if they cannot load."""
        if self._loaded is None:
            from transformers import (
                AutoImageProcessor,
                AutoModelForImageTextToText,
                AutoTokenizer,
            )

            from stepdiff.errors import ModelLoadError
            from stepdiff.hf_quiet import quiet_transformers

            source = self.model_id
            try:
                with quiet_transformers():
                    model = AutoModelForImageTextToText.from_pretrained(
                        source, local_files_only=True
                    )
                    images = AutoImageProcessor.from_pretrained(source, local_files_only=True)
                    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            except Exception as error:  # missing files, unknown architecture, bad config
                raise ModelLoadError(
                    f"captioner {source!r}: cannot load ({first_line(error)})"
                ) from None
            self._loaded = (model.eval(), images, tokenizer)
        return self._loaded

    def __call__(self, clip: ClipRef) -> list[str]:
        import torch

        from stepdiff.video.decode import read_clip_frames

        model, images, tokenizer = self.load()
        frame = read_clip_frames(clip, 1).frames  # (1, H, W, 3) uint8: the middle frame
        pixels = images(images=list(frame), return_tensors="pt")["pixel_values"]  # (1, 3, h, w)
        with torch.no_grad():
            tokens = model.generate(
                pixel_values=pixels, max_new_tokens=self.max_new_tokens, do_sample=False
            )  # (1, T)
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts if t.strip()]


# --- all sources -----------------------------------------------------------------------

Tagger = Callable[[ClipRef], list[Any]]  # ObjectTagger: clip -> [Tag(name, score, frames)]
Captioner = Callable[[ClipRef], list[str]]
Transcriber = Any  # WhisperTranscriber: .narration(clip) -> str


@dataclass
class SourceSet:
    """The sources to consult for each clip; ``None`` turns one off."""

    video_dir: Path
    tagger: Tagger | None = None
    captioner: Captioner | None = None
    asr: str = "transcripts"
    transcriber: Transcriber | None = None
    metadata: bool = True

    def collect(self, entry: ClipEntry) -> ClipEvidence:
        """Every enabled source's evidence for ``entry`` (never raises for one clip's
        missing or bad media)."""
        evidence = ClipEvidence()
        issues = evidence.issues
        path, exists = video_path(entry, self.video_dir)
        clip = ClipRef(path, entry.start, entry.end, clip_id=entry.clip_id)
        needs_video = self.tagger or self.captioner or self.asr == "whisper"
        if needs_video and not exists:
            issues.append("video_missing")
        if self.tagger is not None and exists:
            try:
                tags = self.tagger(clip)[:MAX_TAGS]
                evidence.tags = [(t.name, round(float(t.score), 4)) for t in tags]
            except VideoError as error:
                issues.append(f"tags_failed: {first_line(error)}")
        if self.captioner is not None and exists:
            try:
                evidence.captions = self.captioner(clip)
            except VideoError as error:
                issues.append(f"captions_failed: {first_line(error)}")
        evidence.narration = self._narration(clip, entry, exists, issues)
        if self.metadata:
            evidence.metadata = clip_metadata(entry)
        return evidence

    def _narration(self, clip: ClipRef, entry: ClipEntry, exists: bool, issues: list[str]) -> str:
        if self.asr == "none":
            return ""
        if self.asr == "transcripts":
            text = transcript_narration(clip, entry.clip_id, issues)
        elif not exists:
            return ""
        else:
            try:
                text = self._speech(clip, issues)
            except VideoError as error:
                issues.append(f"asr_failed: {first_line(error)}")
                return ""
        text = " ".join(text.split())
        if not text and not {"no_transcript", "no_audio", "silent_audio"} & set(issues):
            issues.append("narration_empty")  # no audio, silence, or no cue in the segment
        return text

    def _speech(self, clip: ClipRef, issues: list[str]) -> str:
        """Whisper's narration, after telling "no audio stream" from "silence" for the
        report (the transcriber itself returns "" for both)."""
        from stepdiff.datagen.asr import is_silent, load_audio

        samples = load_audio(clip.path, clip.start, clip.end)  # (N,) or None
        if samples is None:
            issues.append("no_audio")
            return ""
        if is_silent(samples):
            issues.append("silent_audio")
            return ""
        return self.transcriber.narration(clip)
