"""Clip references: ClipRef checks, clip-id parsing and resolve_clip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stepdiff.errors import ClipSpecError
from stepdiff.video.clip import ClipId, ClipRef, find_video, parse_clip_id, resolve_clip

# --- ClipRef ---------------------------------------------------------------------------


def test_clip_ref_whole_video() -> None:
    clip = ClipRef(Path("a.mp4"))
    assert not clip.has_segment
    assert str(clip) == "a.mp4"


def test_clip_ref_segment_str() -> None:
    clip = ClipRef(Path("a.mp4"), 2.5, 9.0)
    assert clip.has_segment
    assert str(clip) == "a.mp4@2.5-9"


@pytest.mark.parametrize(
    ("start", "end"),
    [(1.0, None), (None, 1.0), (2.0, 2.0), (3.0, 2.0), (-1.0, 2.0), (0.0, math.inf), (math.nan, 1)],
)
def test_clip_ref_rejects_bad_segments(start: float | None, end: float | None) -> None:
    with pytest.raises(ClipSpecError, match="a.mp4"):
        ClipRef(Path("a.mp4"), start, end)


# --- parse_clip_id ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip_id", "expected"),
    [
        ("vwDbNixns_4_66.35833_77.7176", ClipId("vwDbNixns_4", 66.35833, 77.7176)),
        ("abc_1_2", ClipId("abc", 1.0, 2.0)),
        ("a_b_c_0_5.5", ClipId("a_b_c", 0.0, 5.5)),
        ("-x-_y__0.5_1", ClipId("-x-_y_", 0.5, 1.0)),
        ("uid_1e1_2e1", ClipId("uid", 10.0, 20.0)),
    ],
)
def test_parse_clip_id_splits_from_the_right(clip_id: str, expected: ClipId) -> None:
    assert parse_clip_id(clip_id) == expected


@pytest.mark.parametrize(
    "clip_id",
    ["abc", "abc_1", "_1_2", "abc_x_2", "abc_1_y", "abc_3_2", "abc_2_2", "abc_-1_2", "abc_0_inf"],
)
def test_parse_clip_id_rejects_malformed_ids(clip_id: str) -> None:
    with pytest.raises(ClipSpecError, match="clip id"):
        parse_clip_id(clip_id)


# --- resolve_clip ----------------------------------------------------------------------


@pytest.fixture()
def video_dir(tmp_path: Path) -> Path:
    """A directory of (empty) video files: resolving never opens them."""
    for name in ("vwDbNixns_4.mp4", "other.mkv", "name@with-at.mp4"):
        (tmp_path / name).touch()
    return tmp_path


def test_resolve_plain_path(video_dir: Path) -> None:
    path = video_dir / "vwDbNixns_4.mp4"
    assert resolve_clip(str(path)) == ClipRef(path)
    assert resolve_clip(path) == ClipRef(path)


def test_resolve_path_with_segment(video_dir: Path) -> None:
    path = video_dir / "vwDbNixns_4.mp4"
    assert resolve_clip(f"{path}@1.5-3") == ClipRef(path, 1.5, 3.0)


def test_resolve_path_whose_name_contains_at(video_dir: Path) -> None:
    path = video_dir / "name@with-at.mp4"
    assert resolve_clip(str(path)) == ClipRef(path)
    assert resolve_clip(f"{path}@0-1") == ClipRef(path, 0.0, 1.0)


def test_resolve_clip_id_in_video_dir(video_dir: Path) -> None:
    clip = resolve_clip("vwDbNixns_4_66.35833_77.7176", video_dir=video_dir)
    assert clip == ClipRef(video_dir / "vwDbNixns_4.mp4", 66.35833, 77.7176)


def test_resolve_clip_id_any_extension(video_dir: Path) -> None:
    assert resolve_clip("other_0_2", video_dir=video_dir) == ClipRef(video_dir / "other.mkv", 0, 2)
    assert find_video(video_dir, "other") == video_dir / "other.mkv"


def test_resolve_clip_ref_passes_through() -> None:
    clip = ClipRef(Path("x.mp4"), 1.0, 2.0)
    assert resolve_clip(clip) is clip


def test_resolve_unknown_uid(video_dir: Path) -> None:
    with pytest.raises(ClipSpecError, match="'nouid' not found"):
        resolve_clip("nouid_1_2", video_dir=video_dir)


def test_resolve_missing_file_without_video_dir(tmp_path: Path) -> None:
    with pytest.raises(ClipSpecError, match="missing.mp4"):
        resolve_clip(str(tmp_path / "missing.mp4"))
    with pytest.raises(ClipSpecError, match="missing.mp4"):
        resolve_clip(f"{tmp_path / 'missing.mp4'}@1-2")


@pytest.mark.parametrize(
    ("segment", "start", "end"),
    [
        ("1e-9-2e-9", 1e-9, 2e-9),
        ("1E-3-2.5e-3", 1e-3, 2.5e-3),
        ("0-1e+1", 0.0, 10.0),
        ("1.5e0-3", 1.5, 3.0),
        (".5-2.", 0.5, 2.0),
    ],
)
def test_resolve_segment_in_scientific_notation(
    video_dir: Path, segment: str, start: float, end: float
) -> None:
    path = video_dir / "other.mkv"
    assert resolve_clip(f"{path}@{segment}") == ClipRef(path, start, end)


def test_small_segment_bounds_round_trip_through_str(video_dir: Path) -> None:
    clip = ClipRef(video_dir / "other.mkv", 1e-9, 2e-9)
    assert str(clip).endswith("@1e-09-2e-09")
    assert resolve_clip(str(clip)) == clip


@pytest.mark.parametrize(
    "segment", ["abc", "1", "1-", "-2", "1-2-3", "1e-9", "1e-9-", "1ee-2-3", "1-2e", "1-x2"]
)
def test_resolve_bad_segment(video_dir: Path, segment: str) -> None:
    with pytest.raises(ClipSpecError, match="must read START-END in seconds"):
        resolve_clip(f"{video_dir / 'other.mkv'}@{segment}")


@pytest.mark.parametrize("segment", ["2-1", "-1-2", "1--2", "3-3"])
def test_resolve_segment_out_of_order(video_dir: Path, segment: str) -> None:
    with pytest.raises(ClipSpecError, match="must satisfy 0 <= start < end"):
        resolve_clip(f"{video_dir / 'other.mkv'}@{segment}")
