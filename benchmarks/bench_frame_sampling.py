"""Time frame sampling by seeking against decoding from the start.

    python benchmarks/bench_frame_sampling.py                 # generated clip + vtest.avi
    python benchmarks/bench_frame_sampling.py --video a.mp4 --video b.mkv

Without --video it generates an 80 s 640x360 24 fps H.264 clip (a keyframe every 250
frames, x264's default, unless --keyframe-interval says otherwise) into a temporary
directory, and adds OpenCV's vtest.avi when Debian's opencv-doc is installed. Each
video is sampled over its whole length; the two readers run interleaved, alternating
which goes first, so that drifting machine load hits both alike. Prints the median
times and their ratio.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stepdiff.video import (
    ClipRef,
    SampledFrames,
    probe_video,
    read_clip_frames,
    read_clip_frames_sequential,
    write_synthetic_clip,
)

Reader = Callable[[ClipRef, int], SampledFrames]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, action="append", help="video to time (repeatable)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per read")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per reader")
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


def time_readers(clip: ClipRef, num_frames: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per read, for each reader, from interleaved runs."""
    readers: dict[str, Reader] = {
        "seek": read_clip_frames,
        "sequential": read_clip_frames_sequential,
    }
    # Untimed first pass: warms the page cache and checks the readers agree.
    first = {name: reader(clip, num_frames) for name, reader in readers.items()}
    if not np.array_equal(first["seek"].frames, first["sequential"].frames):
        raise SystemExit(f"{clip}: seeking and sequential readers returned different frames")
    times: dict[str, list[float]] = {name: [] for name in readers}
    order = list(readers)
    for _ in range(repeats):
        for name in order:
            started = time.perf_counter()
            readers[name](clip, num_frames)
            times[name].append(time.perf_counter() - started)
        order.reverse()
    return times


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        videos = list(args.video or [])
        if not videos:
            videos.append(generate_clip(Path(tmp), args.seconds, args.keyframe_interval))
            vtest = find_vtest()
            if vtest is not None:
                videos.append(vtest)
        header = f"{'video':<22} {'codec':<8} {'size':>9} {'length':>7}"
        header += f" {'seek ms':>9} {'sequential ms':>14} {'ratio':>6}"
        print(f"{args.num_frames} frames over the whole clip, median of {args.repeats} runs")
        print(header)
        print("-" * len(header))
        for video in videos:
            info = probe_video(video)
            times = time_readers(ClipRef(video), args.num_frames, args.repeats)
            seek = statistics.median(times["seek"])
            sequential = statistics.median(times["sequential"])
            print(
                f"{video.name:<22} {info.codec:<8} {info.width:>4}x{info.height:<4} "
                f"{info.duration:>6.1f}s {seek * 1e3:>9.1f} {sequential * 1e3:>14.1f} "
                f"{sequential / seek:>5.1f}x"
            )


if __name__ == "__main__":
    main()
