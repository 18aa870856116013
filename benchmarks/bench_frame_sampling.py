"""Time frame sampling by seeking against decoding everything, OpenCV and decord.

    python benchmarks/bench_frame_sampling.py                 # generated clip + vtest.avi
    python benchmarks/bench_frame_sampling.py --keyframe-interval 24
    python benchmarks/bench_frame_sampling.py --video a.mp4 --video b.mkv

Without --video it generates an 80 s 640x360 24 fps H.264 clip (a keyframe every 250
frames, x264's default, unless --keyframe-interval says otherwise) into a temporary
directory, and adds OpenCV's vtest.avi when Debian's opencv-doc is installed. (With
--keyframe-interval 24 every default target of the 80 s clip is itself a keyframe: the
best case for seeking.)

Every reader is asked for the same ``--num-frames`` frames spread over the whole video
(the bin centres of :func:`stepdiff.video.sample_times`):

- ``seek``: :func:`stepdiff.video.read_clip_frames` (seeks, skips non-reference frames,
  decodes different GOPs side by side on one thread per core)
- ``seek-1-worker``: the same, every GOP on one thread (FFmpeg's own decoder threading)
- ``seek-no-skip``: ``seek-1-worker`` with the skipping turned off, for its gain
- ``sequential``: :func:`stepdiff.video.read_clip_frames_sequential`, which decodes every
  frame up to the last target (same decoder threading as ``seek``)
- ``opencv-frames`` / ``opencv-msec``: ``cv2.VideoCapture``, seeking with
  ``CAP_PROP_POS_FRAMES`` / ``CAP_PROP_POS_MSEC`` before each ``read()``
- ``opencv-sequential``: ``grab()`` every frame, ``retrieve()`` only the targets
- ``decord``: ``decord.VideoReader(...).get_batch(indices)``

OpenCV and decord are optional (``pip install '.[bench]'``); a missing one is skipped.
They are given the frame that ``seek`` returned, as a frame index ``round(t * fps)`` (or
its time, for ``opencv-msec``), which assumes a constant frame rate; each reader's
frames are then compared with ours (max abs pixel difference, 0 = identical RGB).

Readers run interleaved, alternating which goes first, so that drifting machine load
hits all alike; each read opens the file afresh. Prints median times and each reader's
speed-up over ``sequential``, how many frames our readers decode, and what share of the
file's frames and decoding time its reference frames take (decoding the whole file with
and without skipping the others): the work that no exact reader can avoid.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from stepdiff.video import (
    ClipRef,
    SampledFrames,
    probe_video,
    read_clip_frames,
    read_clip_frames_sequential,
    write_synthetic_clip,
)
from stepdiff.video import decode as video_decode

# Reads (video, frame indices, frame times in s) -> (N, H, W, 3) uint8 RGB.
Reader = Callable[[Path, list[int], list[float]], np.ndarray]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, action="append", help="video to time (repeatable)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per read")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per reader")
    parser.add_argument("--seconds", type=float, default=80.0, help="generated clip length")
    parser.add_argument(
        "--keyframe-interval", type=int, default=250, help="generated clip's GOP, in frames"
    )
    return parser.parse_args(argv)


def find_vtest() -> Path | None:
    found = sorted(glob.glob("/usr/share/doc/opencv-doc*/**/vtest.avi", recursive=True))
    return Path(found[0]) if found else None


def generate_clip(directory: Path, seconds: float, keyframe_interval: int) -> Path:
    started = time.perf_counter()
    path = write_synthetic_clip(
        directory / "bench_640x360.mp4",
        seconds=seconds,
        fps=24,
        size=(640, 360),
        keyframe_interval=keyframe_interval,
    )
    print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


# --- readers ----------------------------------------------------------------------------


def read_without_skipping(clip: ClipRef, num_frames: int) -> SampledFrames:
    """``read_clip_frames`` with non-reference frame skipping off (module internals)."""

    def pick(
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        timeline: video_decode._Timeline,
        targets: list[float],
        path: Path,
    ) -> list:
        with video_decode._open(path) as probe:
            reader = video_decode._SeekingReader(
                container, probe, timeline, path, skip_nonref=False
            )
            return [reader.frame_at(target) for target in targets]

    return video_decode._sample(clip, num_frames, pick)


def read_with_one_worker(clip: ClipRef, num_frames: int) -> SampledFrames:
    """``read_clip_frames`` reading every GOP on one thread (FFmpeg's own threading)."""
    return read_clip_frames(clip, num_frames, workers=1)


OURS: dict[str, Callable[[ClipRef, int], SampledFrames]] = {
    "seek": read_clip_frames,
    "seek-1-worker": read_with_one_worker,
    "seek-no-skip": read_without_skipping,
    "sequential": read_clip_frames_sequential,
}


def ours(reader: Callable[[ClipRef, int], SampledFrames], num_frames: int) -> Reader:
    def read(path: Path, indices: list[int], times: list[float]) -> np.ndarray:
        return reader(ClipRef(path), num_frames).frames

    return read


def opencv_readers() -> dict[str, Reader]:
    """OpenCV's two ways of seeking and its sequential read; {} if cv2 is missing."""
    if importlib.util.find_spec("cv2") is None:
        print("opencv-python-headless not installed: OpenCV readers skipped", file=sys.stderr)
        return {}
    import cv2

    def seeking(prop: int, by_time: bool) -> Reader:
        def read(path: Path, indices: list[int], times: list[float]) -> np.ndarray:
            capture = cv2.VideoCapture(str(path))
            frames = []
            for index, seconds in zip(indices, times, strict=True):
                capture.set(prop, seconds * 1000 if by_time else index)
                ok, frame = capture.read()
                if not ok:
                    raise RuntimeError(f"OpenCV could not read frame {index} of {path}")
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            capture.release()
            return np.stack(frames)

        return read

    def sequential(path: Path, indices: list[int], times: list[float]) -> np.ndarray:
        capture = cv2.VideoCapture(str(path))
        wanted, frames, index = set(indices), [], 0
        # grab() decodes without the BGR conversion; only kept frames are retrieved.
        while len(frames) < len(indices) and capture.grab():
            if index in wanted:
                frames.append(cv2.cvtColor(capture.retrieve()[1], cv2.COLOR_BGR2RGB))
            index += 1
        capture.release()
        return np.stack(frames)

    return {
        "opencv-frames": seeking(cv2.CAP_PROP_POS_FRAMES, by_time=False),
        "opencv-msec": seeking(cv2.CAP_PROP_POS_MSEC, by_time=True),
        "opencv-sequential": sequential,
    }


def decord_readers() -> dict[str, Reader]:
    if importlib.util.find_spec("decord") is None:
        print("decord not installed: its reader skipped", file=sys.stderr)
        return {}
    import decord

    def read(path: Path, indices: list[int], times: list[float]) -> np.ndarray:
        return decord.VideoReader(str(path)).get_batch(indices).asnumpy()

    return {"decord": read}


# --- measuring --------------------------------------------------------------------------


def frames_decoded(
    reader: Callable[[ClipRef, int], SampledFrames], clip: ClipRef, num_frames: int
) -> int:
    """Frames the decoder returns during one read (frames it skipped are not counted)."""
    decode = video_decode._decode
    counts: list[int] = []  # appended to by every decoding thread (append is atomic)

    def counting(stream: av.video.stream.VideoStream, packet: av.Packet | None) -> list:
        frames = decode(stream, packet)
        counts.append(len(frames))
        return frames

    video_decode._decode = counting
    try:
        reader(clip, num_frames)
    finally:
        video_decode._decode = decode
    return sum(counts)


def decode_whole_file(path: Path, skip_nonref: bool) -> tuple[int, float]:
    """(frames returned, seconds) decoding every packet of ``path``, optionally letting the
    decoder skip non-reference frames; same threading as our readers."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        video_decode._configure_decoder(stream)
        stream.codec_context.skip_frame = "NONREF" if skip_nonref else "DEFAULT"
        started = time.perf_counter()
        count = sum(1 for _ in container.decode(stream))
        return count, time.perf_counter() - started


def reference_share(path: Path, repeats: int) -> str:
    """What share of frames, and of decoding time, the reference frames take: the part of
    the work that no exact reader can skip."""
    runs: dict[bool, list[float]] = {False: [], True: []}
    counts: dict[bool, int] = {}
    for repeat in range(repeats):
        for skip in (False, True) if repeat % 2 else (True, False):
            counts[skip], seconds = decode_whole_file(path, skip)
            runs[skip].append(seconds)
    frames = counts[True] / counts[False]
    seconds = statistics.median(runs[True]) / statistics.median(runs[False])
    return f"reference frames: {frames:.0%} of the frames, {seconds:.0%} of the decoding time"


def time_readers(
    readers: dict[str, Reader], path: Path, indices: list[int], times: list[float], repeats: int
) -> dict[str, list[float]]:
    """Seconds per read, for each reader, from interleaved runs."""
    timings: dict[str, list[float]] = {name: [] for name in readers}
    order = list(readers)
    for _ in range(repeats):
        for name in order:
            started = time.perf_counter()
            readers[name](path, indices, times)
            timings[name].append(time.perf_counter() - started)
        order.reverse()
    return timings


def bench_video(path: Path, readers: dict[str, Reader], args: argparse.Namespace) -> None:
    info = probe_video(path)
    reference = read_clip_frames(ClipRef(path), args.num_frames)
    times = reference.timestamps
    indices = [round(t * info.fps) for t in times]
    # Untimed first pass: warms the page cache and compares every reader's frames.
    max_diff = {
        name: int(np.abs(read(path, indices, times).astype(np.int16) - reference.frames).max())
        for name, read in readers.items()
    }
    timings = time_readers(readers, path, indices, times, args.repeats)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"\n{path.name}: {info.codec} {info.width}x{info.height}, {info.duration:.1f} s, "
        f"frames {indices}"
    )
    header = f"  {'reader':<18} {'median ms':>10} {'vs sequential':>14} {'max |diff|':>11}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, median in medians.items():
        speedup = medians["sequential"] / median
        print(f"  {name:<18} {median * 1e3:>10.1f} {speedup:>13.2f}x {max_diff[name]:>11}")
    counts = {
        name: frames_decoded(reader, ClipRef(path), args.num_frames)
        for name, reader in OURS.items()
    }
    print("  frames decoded: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    print(f"  {reference_share(path, args.repeats)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    readers: dict[str, Reader] = {
        **{name: ours(reader, args.num_frames) for name, reader in OURS.items()},
        **opencv_readers(),
        **decord_readers(),
    }
    print(f"{args.num_frames} frames over the whole video, median of {args.repeats} runs")
    with tempfile.TemporaryDirectory() as tmp:
        videos = list(args.video or [])
        if not videos:
            videos.append(generate_clip(Path(tmp), args.seconds, args.keyframe_interval))
            vtest = find_vtest()
            if vtest is not None:
                videos.append(vtest)
        for video in videos:
            bench_video(video, readers, args)


if __name__ == "__main__":
    main()
