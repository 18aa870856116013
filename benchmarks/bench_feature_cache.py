"""Per-clip cost of frozen-encoder features: decode + encode against the feature cache.

    python benchmarks/bench_feature_cache.py [--clips 4] [--seconds 10] [--repeats 5] [--threads 1]

Generates ``--clips`` synthetic 640x360 H.264 clips (different scenes) and a feature cache
in a temporary directory (never the user's cache), then times, per clip and side by
side, the three ways training and evaluation get a clip's EfficientNet-Lite0 tokens
(8 frames -> (8, 49, 1280) float32, 2 MB):

- ``decode+encode``: a :class:`~stepdiff.encoders.ClipFeaturizer` without a cache (seek
  and decode 8 frames, resize, run the frozen encoder): the first pass over a clip
- ``disk cache``: the same featurizer with a *fresh* :class:`~stepdiff.encoders.FeatureCache`
  per read (nothing held in this process; the file itself is in the OS page cache):
  every later evaluation run, and training's start-up
- ``in memory``: :class:`stepdiff.train.features.FeatureBank`, which training fills once
  per run and reads every step (FeatureCache itself keeps nothing in memory)

The three run interleaved, clip by clip, alternating their order; the medians over all
clips and repeats are printed with their ratios, and the disk-cache read is split into
its parts (cache key, file read, safetensors parse). Torch runs ``--threads`` threads
(default 1): on a machine whose cores are busy with other work, more OpenMP threads than
free cores make the encoder many times slower, which would flatter the cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from stepdiff.encoders import ClipFeaturizer, FeatureCache, build_frame_encoder
from stepdiff.train.features import FeatureBank
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

NUM_FRAMES = 8
SCENES = [
    SceneSpec(),
    SceneSpec(vessel="pot", tool="whisk", food_color=(240, 240, 230), motion="back_and_forth"),
    SceneSpec(vessel="bowl", tool="spatula", food_color=(200, 60, 40), motion="still"),
    SceneSpec(vessel="pan", tool="whisk", food_color=(120, 180, 60), motion="circle"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="generated clips")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--repeats", type=int, default=5, help="timed reads per clip and path")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    return parser.parse_args(argv)


def make_clips(directory: Path, count: int, seconds: float) -> list[ClipRef]:
    started = time.perf_counter()
    clips = [
        ClipRef(
            write_synthetic_clip(
                directory / f"clip{i}.mp4",
                SCENES[i % len(SCENES)],
                seconds=seconds,
                size=(640, 360),
            )
        )
        for i in range(count)
    ]
    print(f"generated {count} clips in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return clips


def timed(function: Callable[[int, ClipRef], object], index: int, clip: ClipRef) -> float:
    started = time.perf_counter()
    function(index, clip)
    return time.perf_counter() - started


def disk_read_parts(featurizer: ClipFeaturizer, cache: FeatureCache, clip: ClipRef) -> list[float]:
    """Seconds spent on the cache key, reading the file and parsing it, for one read."""
    started = time.perf_counter()
    key = featurizer.key(clip)
    keyed = time.perf_counter()
    data = cache.path(key).read_bytes()
    read = time.perf_counter()
    load_safetensors(data)
    parsed = time.perf_counter()
    return [keyed - started, read - keyed, parsed - read]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    encoder = build_frame_encoder("efficientnet-lite0").eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = make_clips(root, args.clips, args.seconds)
        uncached = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=None)
        # First pass (untimed): fills the disk cache and the in-memory bank.
        filling = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=FeatureCache(root / "c"))
        bank = FeatureBank({str(i): filling([clip])[0] for i, clip in enumerate(clips)})

        def from_disk(clip: ClipRef) -> torch.Tensor:
            fresh = FeatureCache(root / "c")
            tokens = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=fresh)([clip])
            assert fresh.hits == 1  # a miss would time decode+encode instead
            return tokens

        paths: dict[str, Callable[[int, ClipRef], object]] = {
            "decode+encode": lambda i, clip: uncached([clip]),
            "disk cache": lambda i, clip: from_disk(clip),
            "in memory": lambda i, clip: bank.videos([[str(i)]]),
        }
        for i, clip in enumerate(clips):  # the paths must agree before they are timed
            expected = bank.features[str(i)]
            assert torch.equal(from_disk(clip)[0], expected)
            assert torch.allclose(uncached([clip])[0], expected, atol=1e-5)

        times: dict[str, list[float]] = {name: [] for name in paths}
        parts: list[list[float]] = []
        order = list(paths)
        for _ in range(args.repeats):
            for i, clip in enumerate(clips):
                for name in order:
                    times[name].append(timed(paths[name], i, clip))
                order.reverse()
                parts.append(disk_read_parts(uncached, FeatureCache(root / "c"), clip))

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"{args.clips} clips of {args.seconds:g} s 640x360, {NUM_FRAMES} frames each, "
        f"EfficientNet-Lite0 tokens {tuple(bank.features['0'].shape)}; "
        f"median of {len(times['disk cache'])} reads per path, torch threads: {args.threads}"
    )
    base = medians["decode+encode"]
    for name, median in medians.items():
        print(f"  {name:<14} {median * 1e3:>9.2f} ms/clip  {base / median:>9.1f}x faster")
    key, read, parse = (statistics.median(column) * 1e3 for column in zip(*parts, strict=True))
    print(f"  disk cache parts: key {key:.3f} ms, file read {read:.3f} ms, parse {parse:.3f} ms")


if __name__ == "__main__":
    main()
