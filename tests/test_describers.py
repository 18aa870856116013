"""Clip descriptions from automatic sources: ImageNet object tags and narration files."""

from __future__ import annotations

import pytest

from stepdiff.baselines.describers import SourceDescriber
from stepdiff.encoders.tags import ObjectTagger, Tag, imagenet_class_names
from stepdiff.video.clip import ClipRef
from stepdiff.video.transcripts import clip_narration, parse_subtitles

SRT = """1
00:00:00,500 --> 00:00:02,000
First I heat the oil.

2
00:00:02,500 --> 00:00:04,250
Then I add <i>two</i> eggs.
"""
VTT = """WEBVTT

00:01.000 --> 00:03.000 align:start
Whisk until smooth.
"""


def test_subtitles_parse_to_timed_cues():
    cues = parse_subtitles(SRT)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.5, 2.0, "First I heat the oil."),
        (2.5, 4.25, "Then I add two eggs."),
    ]
    assert [(c.start, c.end, c.text) for c in parse_subtitles(VTT)] == [
        (1.0, 3.0, "Whisk until smooth.")
    ]


def test_clip_narration_takes_overlapping_cues_and_survives_bad_bytes(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    (tmp_path / "v.srt").write_bytes(SRT.replace("oil", "o\xefl").encode("latin-1"))
    assert clip_narration(ClipRef(video, 2.2, 3.0)) == "Then I add two eggs."
    assert clip_narration(ClipRef(video, 0.0, 3.0)).startswith("First I heat the o\ufffdl.")
    assert clip_narration(ClipRef(tmp_path / "none.mp4")) == ""


def test_imagenet_class_names_are_in_classifier_order():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[567] == "frying pan" and names[910] == "wooden spoon"


class FixedTagger:
    def __call__(self, clip):
        return [Tag("frying pan", 0.6, 8), Tag("wooden spoon", 0.3, 5)]


def test_source_describer_combines_tags_and_narration(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    (tmp_path / "v.vtt").write_text(VTT)
    describe = SourceDescriber(FixedTagger())
    assert describe(ClipRef(video, 0.0, 2.0)) == (
        "Objects: frying pan, wooden spoon. Narration: Whisk until smooth."
    )


@pytest.mark.integration
def test_object_tagger_keeps_confident_tags_seen_in_several_frames(synthetic_clip_path):
    tags = ObjectTagger(min_score=0.01, min_frames=2)(ClipRef(synthetic_clip_path))
    assert tags, "a drawn pan with food should trigger some ImageNet classes"
    assert all(t.score >= 0.01 and t.frames >= 2 for t in tags)
    assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
