"""Synthetic cooking clips: determinism, scene differences and the frame index code."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stepdiff.video import (
    ClipRef,
    SceneSpec,
    decode_frame_index_code,
    probe_video,
    read_clip_frames,
    render_synthetic_frame,
    write_synthetic_clip,
)
from stepdiff.video.synthetic import CODE_BITS


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_clip_properties(synthetic_clip_path: Path) -> None:
    with av.open(str(synthetic_clip_path)) as container:
        stream = container.streams.video[0]
        keyframes = [frame.key_frame for frame in container.decode(stream)]  # display order
    assert len(keyframes) == 96
    # One keyframe per second by default.
    assert [i for i, key in enumerate(keyframes) if key] == [0, 24, 48, 72]


def test_every_decoded_frame_carries_its_index(synthetic_clip_path: Path) -> None:
    with av.open(str(synthetic_clip_path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert [decode_frame_index_code(frame) for frame in frames] == list(range(96))


@pytest.mark.parametrize("size", [32, 64, 128, (640, 360), (96, 160)])
@pytest.mark.parametrize("index", [0, 1, 2, 5, 100, 1234, 2**CODE_BITS - 1])
def test_index_code_round_trip(size: int | tuple[int, int], index: int) -> None:
    frame = render_synthetic_frame(SceneSpec(), index, size=size, frame_index_code=True)
    assert decode_frame_index_code(frame) == index


def test_same_spec_same_clip(tmp_path: Path) -> None:
    scene = SceneSpec(vessel="pot", tool="whisk", motion="back_and_forth")
    a = write_synthetic_clip(tmp_path / "a.mp4", scene, seconds=1.0, fps=12, size=64)
    b = write_synthetic_clip(tmp_path / "b.mp4", scene, seconds=1.0, fps=12, size=64)
    assert a.read_bytes() == b.read_bytes()
    frames_a, frames_b = read_clip_frames(ClipRef(a), 4), read_clip_frames(ClipRef(b), 4)
    assert np.array_equal(frames_a.frames, frames_b.frames)


def test_write_returns_path_and_sizes(tmp_path: Path) -> None:
    path = write_synthetic_clip(str(tmp_path / "wide.mp4"), seconds=0.5, fps=10, size=(96, 64))
    assert path == tmp_path / "wide.mp4"
    info = probe_video(path)
    assert (info.width, info.height, info.fps) == (96, 64, 10.0)
    assert info.duration == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("other", "threshold"),
    [
        (SceneSpec(tool_color=(40, 90, 200)), 3.0),
        (SceneSpec(vessel_color=(150, 40, 30)), 8.0),
        (SceneSpec(food_color=(200, 60, 40)), 3.0),
        (SceneSpec(vessel="bowl"), 5.0),
        (SceneSpec(vessel="pot"), 5.0),
        (SceneSpec(tool="spatula"), 0.5),
        (SceneSpec(background=(90, 120, 90)), 40.0),
    ],
)
def test_scenes_differ_visibly(tmp_path: Path, other: SceneSpec, threshold: float) -> None:
    paths = [
        write_synthetic_clip(tmp_path / f"{name}.mp4", scene, seconds=1.0, fps=12, size=96)
        for name, scene in (("base", SceneSpec()), ("other", other))
    ]
    base, changed = (read_clip_frames(ClipRef(path), 4).frames for path in paths)
    assert _mean_abs_diff(base, changed) > threshold


def test_motion(tmp_path: Path) -> None:
    still = [render_synthetic_frame(SceneSpec(motion="still"), i) for i in (0, 7, 30)]
    assert all(np.array_equal(still[0], frame) for frame in still[1:])
    for motion in ("circle", "back_and_forth"):
        first, later = (render_synthetic_frame(SceneSpec(motion=motion), i) for i in (0, 6))
        assert _mean_abs_diff(first, later) > 1.0


def test_render_is_deterministic() -> None:
    scene = SceneSpec(tool="spatula", vessel="bowl")
    a = render_synthetic_frame(scene, 17, size=(160, 90))
    b = render_synthetic_frame(scene, 17, size=(160, 90))
    assert a.shape == (90, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vessel": "wok"},
        {"tool": "fork"},
        {"motion": "shake"},
        {"tool_color": (0, 0, 256)},
        {"food_color": (1, 2)},
    ],
)
def test_scene_spec_rejects_unknown_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SceneSpec(**kwargs)


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="suffix"):
        write_synthetic_clip(tmp_path / "clip.gif")
    with pytest.raises(ValueError, match="even"):
        write_synthetic_clip(tmp_path / "clip.mp4", size=65)
    with pytest.raises(ValueError, match="index code"):
        write_synthetic_clip(tmp_path / "clip.mp4", seconds=200.0, fps=24, frame_index_code=True)
    with pytest.raises(ValueError, match="no frame"):
        write_synthetic_clip(tmp_path / "clip.mp4", seconds=0.01)
