"""Feature cache (keys, atomic writes, corruption, concurrency) and the clip featurizer."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from stepdiff.encoders import ClipFeaturizer, FeatureCache, TinyFrameEncoder, feature_key
from stepdiff.errors import VideoError
from stepdiff.video.clip import ClipRef

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

NUM_FRAMES = 4
WRITES_PER_PROCESS = 200


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short, different synthetic cooking clips (real mp4 files)."""
    from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

    root = tmp_path_factory.mktemp("videos")
    scene_b = SceneSpec(vessel="bowl", food_color=(200, 60, 40), motion="back_and_forth")
    return [
        write_synthetic_clip(root / "a.mp4", SceneSpec(), seconds=2.0, fps=12, size=64),
        write_synthetic_clip(root / "b.mp4", scene_b, seconds=3.0, fps=12, size=64),
    ]


class CountingEncoder(TinyFrameEncoder):
    """TinyFrameEncoder that counts forward calls and encoded clips."""

    def __init__(self) -> None:
        super().__init__(dim=16, image_size=32, grid=2, seed=0)
        self.calls = 0
        self.clips = 0

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.clips += frames.shape[0]
        return super().forward(frames)


def _direct(encoder: TinyFrameEncoder, clip: ClipRef, num_frames: int = NUM_FRAMES) -> torch.Tensor:
    """Decode + transform + encode one clip without the featurizer: (T, P, D)."""
    from stepdiff.video.decode import read_clip_frames
    from stepdiff.video.transforms import frames_to_tensor

    sampled = read_clip_frames(clip, num_frames=num_frames)
    pixels = frames_to_tensor(sampled.frames, encoder.image_size, encoder.mean, encoder.std)
    return encoder(pixels.unsqueeze(0))[0]


# --- FeatureCache ------------------------------------------------------------------------------


def test_put_get_roundtrip_and_counters(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    tensor = torch.randn(2, 3, 4)
    path = cache.put(key, tensor)
    assert path == cache.path(key) and path.is_file()
    assert torch.equal(cache.get(key), tensor)
    assert (cache.hits, cache.misses) == (1, 1)
    # put leaves no temp file behind
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_default_root_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPDIFF_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c" / "features"
    monkeypatch.delenv("STEPDIFF_CACHE")
    assert FeatureCache().root == Path.home() / ".cache" / "stepdiff" / "features"


def test_key_parts(videos: list[Path], tmp_path: Path) -> None:
    clip = ClipRef(videos[0])
    base = feature_key("tiny", clip, 8, 32)
    assert base == feature_key("tiny", ClipRef(videos[0].parent / "." / videos[0].name), 8, 32)
    others = {
        feature_key("other", clip, 8, 32),
        feature_key("tiny", clip, 4, 32),
        feature_key("tiny", clip, 8, 64),
        feature_key("tiny", ClipRef(videos[0], 0.0, 1.0), 8, 32),
        feature_key("tiny", ClipRef(videos[0], 0.0, 1.5), 8, 32),
        feature_key("tiny", ClipRef(videos[1]), 8, 32),
    }
    assert base not in others and len(others) == 6
    # int and float bounds of the same segment are the same clip
    assert feature_key("tiny", ClipRef(videos[0], 0, 1), 8, 32) == feature_key(
        "tiny", ClipRef(videos[0], 0.0, 1.0), 8, 32
    )
    with pytest.raises(VideoError, match="cannot read video"):
        feature_key("tiny", ClipRef(tmp_path / "missing.mp4"), 8, 32)


def test_second_call_hits_without_encoding(videos: list[Path], tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path)
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)
    clips = [ClipRef(videos[0]), ClipRef(videos[1])]
    first = featurizer(clips)
    assert (encoder.calls, cache.misses, cache.hits) == (1, 2, 0)
    second = featurizer(clips)
    assert encoder.calls == 1 and cache.hits == 2
    assert torch.equal(first, second)
    # A fresh featurizer/cache object on the same folder (e.g. the next run) also hits.
    again = ClipFeaturizer(CountingEncoder(), num_frames=NUM_FRAMES, cache=FeatureCache(tmp_path))
    assert torch.equal(again(clips[::-1]), first.flip(0))
    assert again.encoder.calls == 0  # type: ignore[attr-defined]


def test_changes_to_sampling_segment_or_file_miss(videos: list[Path], tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(videos[0].read_bytes())
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path / "cache")
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)
    featurizer([ClipRef(video)])
    assert encoder.clips == 1

    ClipFeaturizer(encoder, num_frames=NUM_FRAMES + 2, cache=cache)([ClipRef(video)])
    assert encoder.clips == 2
    featurizer([ClipRef(video, 0.5, 1.5)])
    assert encoder.clips == 3
    featurizer([ClipRef(video)])  # unchanged: still a hit
    assert encoder.clips == 3

    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # `touch`
    featurizer([ClipRef(video)])
    assert encoder.clips == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_entry_is_recomputed(videos: list[Path], tmp_path: Path, damage: str) -> None:
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path)
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)
    clip = ClipRef(videos[0])
    expected = featurizer([clip])
    entry = cache.path(featurizer.key(clip))
    data = entry.read_bytes()
    entry.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage]
    )
    assert cache.get(featurizer.key(clip)) is None
    assert torch.equal(featurizer([clip]), expected)
    assert encoder.calls == 2
    assert torch.equal(cache.get(featurizer.key(clip)), expected[0])  # overwritten, valid again


def test_leftover_temp_file_is_ignored(videos: list[Path], tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path)
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)
    clip = ClipRef(videos[0])
    key = featurizer.key(clip)
    # What a writer killed mid-write leaves: a partial temp file, no entry.
    entry = cache.path(key)
    entry.parent.mkdir(parents=True)
    (entry.parent / f".{key}.12345.tmp").write_bytes(b"partial")
    assert cache.get(key) is None
    expected = featurizer([clip])
    assert encoder.calls == 1
    assert torch.equal(cache.get(key), expected[0])


def _padded_copy(source: Path, target: Path, size: int) -> Path:
    """``source`` grown to ``size`` bytes by a trailing mp4 ``free`` box (which players
    skip), so that two different clips can have the same size."""
    data = source.read_bytes()
    padding = size - len(data)
    assert padding >= 8, "a free box needs an 8-byte header"
    target.write_bytes(data + padding.to_bytes(4, "big") + b"free" + bytes(padding - 8))
    return target


def test_replacement_with_same_size_and_mtime_misses(videos: list[Path], tmp_path: Path) -> None:
    size = max(video.stat().st_size for video in videos) + 64
    first, second = (_padded_copy(v, tmp_path / f"{i}.mp4", size) for i, v in enumerate(videos))
    video = tmp_path / "v.mp4"
    shutil.copyfile(first, video)
    encoder = CountingEncoder()
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=FeatureCache(tmp_path / "c"))
    featurizer([ClipRef(video)])
    before = video.stat()

    # What `cp -p` or an archive restore does: other bytes, same size, same mtime.
    shutil.copyfile(second, video)
    os.utime(video, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = video.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    tokens = featurizer([ClipRef(video)])
    assert encoder.clips == 2
    assert torch.allclose(tokens[0], _direct(TinyFrameEncoder(), ClipRef(second)), atol=1e-5)


@pytest.mark.parametrize("where", ["head", "tail"])
def test_fingerprint_covers_both_ends_of_a_large_file(tmp_path: Path, where: str) -> None:
    video = tmp_path / "big.mp4"
    video.write_bytes(bytes(5 << 20))  # 5 MiB: head and tail spans do not overlap
    before = video.stat()
    key = feature_key("tiny", ClipRef(video), 8, 32)
    with video.open("r+b") as handle:
        handle.seek(10 if where == "head" else before.st_size - 10)
        handle.write(b"x")
    os.utime(video, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert feature_key("tiny", ClipRef(video), 8, 32) != key


def _bad_entry(kind: str) -> torch.Tensor:
    """An entry a (T, P, D) = (NUM_FRAMES, 4, 16) fp32 key must not accept."""
    good = torch.zeros(NUM_FRAMES, 4, 16)
    if kind == "shape":
        return torch.zeros(3, 3)
    if kind == "dtype":
        return good.half()
    return good.index_fill(2, torch.tensor([5]), float(kind))  # "nan", "inf", "-inf"


@pytest.mark.parametrize("kind", ["shape", "dtype", "nan", "inf", "-inf"])
def test_entry_breaking_its_key_is_recomputed_with_one_warning(
    videos: list[Path], tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    reference = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES)
    clips = [ClipRef(videos[0]), ClipRef(videos[1])]
    expected = reference(clips)
    encoder = CountingEncoder()
    cache = FeatureCache(tmp_path)
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)
    for clip in clips:
        cache.put(featurizer.key(clip), _bad_entry(kind))

    with caplog.at_level(logging.WARNING, logger="stepdiff.encoders.cache"):
        tokens = featurizer(clips)
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=1e-5)
    assert encoder.clips == 2 and cache.hits == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "corrupt entry" in warnings[0]  # once, not per entry
    # The bad entries were replaced: the next call hits and encodes nothing.
    torch.testing.assert_close(featurizer(clips), expected, atol=1e-5, rtol=1e-5)
    assert encoder.clips == 2 and cache.hits == 2


@pytest.mark.parametrize("unwritable", ["under_a_file", "permission"])
def test_unwritable_cache_folder_warns_once_and_keeps_working(
    videos: list[Path],
    tmp_path: Path,
    unwritable: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Root can write anywhere, so a read-only folder is a path under a regular file or a
    write that raises PermissionError."""
    root = tmp_path / "cache"
    if unwritable == "under_a_file":
        (tmp_path / "file").write_text("not a folder")
        root = tmp_path / "file" / "cache"
    else:

        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr("stepdiff.encoders.cache.tempfile.mkstemp", refuse)
    clips = [ClipRef(videos[0]), ClipRef(videos[1])]
    expected = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES)(clips)
    encoder = CountingEncoder()
    cache = FeatureCache(root)
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=cache)

    with caplog.at_level(logging.WARNING, logger="stepdiff.encoders.cache"):
        torch.testing.assert_close(featurizer(clips), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(featurizer(clips), expected, atol=1e-5, rtol=1e-5)
    assert encoder.clips == 4 and not cache.writable  # nothing stored, every call encodes
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"cannot write to {root}" in warnings[0]
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and "cache" in path.parts]


def _concurrent_writer(root: str, video: str, start: Barrier) -> None:
    """Child process: featurize one clip, then rewrite its entry many times."""
    torch.set_num_threads(1)
    cache = FeatureCache(Path(root))
    featurizer = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES, cache=None)
    clip = ClipRef(Path(video))
    tokens = featurizer([clip])[0]
    key = featurizer.key(clip)
    start.wait(timeout=120)  # both writers (and the reading parent) go at once
    for _ in range(WRITES_PER_PROCESS):
        cache.put(key, tokens)


def test_concurrent_writers_leave_a_valid_entry(videos: list[Path], tmp_path: Path) -> None:
    clip = ClipRef(videos[0])
    encoder = TinyFrameEncoder()
    expected = _direct(encoder, clip)
    cache = FeatureCache(tmp_path)
    key = feature_key(encoder.cache_id, clip, NUM_FRAMES, encoder.image_size)

    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    workers = [
        ctx.Process(target=_concurrent_writer, args=(str(tmp_path), str(videos[0]), start))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.wait(timeout=120)
    # Read while they write: once the entry exists, every read must be complete.
    reads = 0
    deadline = time.monotonic() + 120
    while any(worker.is_alive() for worker in workers) and time.monotonic() < deadline:
        if cache.path(key).exists():
            tensor = cache.get(key)
            assert tensor is not None, "a reader saw a partial entry"
            assert torch.allclose(tensor, expected, atol=1e-6)
            reads += 1
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    print(f"{reads} reads during concurrent writes")
    assert torch.allclose(cache.get(key), expected, atol=1e-6)
    leftovers = [p.name for p in cache.path(key).parent.iterdir() if p != cache.path(key)]
    assert leftovers == []


# --- ClipFeaturizer ------------------------------------------------------------------------------


def test_featurize_matches_direct_encoding_in_order(videos: list[Path], tmp_path: Path) -> None:
    encoder = CountingEncoder()
    a, b = ClipRef(videos[0]), ClipRef(videos[1])
    seg = ClipRef(videos[1], 0.5, 2.0)
    clips = [b, a, seg, b, a]  # duplicates within one call
    featurizer = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=None, batch_size=2)
    tokens = featurizer(clips)
    assert tokens.shape == (5, NUM_FRAMES, 4, 16) and tokens.dtype == torch.float32
    assert encoder.clips == 3 and encoder.calls == 2  # 3 distinct clips, batches of 2
    direct = {clip: _direct(TinyFrameEncoder(), clip) for clip in (a, b, seg)}
    for row, clip in zip(tokens, clips, strict=True):
        assert torch.allclose(row, direct[clip], atol=1e-5)
    assert not torch.allclose(direct[a], direct[b])

    cached = ClipFeaturizer(encoder, num_frames=NUM_FRAMES, cache=FeatureCache(tmp_path))
    assert torch.allclose(cached(clips), tokens, atol=1e-6)
    assert cached(clips).shape == tokens.shape


def test_featurize_empty_batch() -> None:
    featurizer = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES)
    assert featurizer([]).shape == (0, NUM_FRAMES, 4, 16)


def test_frames_follow_the_encoder_dtype_and_features_come_back_fp32(
    videos: list[Path], tmp_path: Path
) -> None:
    """An encoder in another dtype (or on a GPU) gets frames cast to match; the features
    stored and returned are fp32 CPU tensors either way."""
    reference = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES)([ClipRef(videos[0])])
    wide = TinyFrameEncoder().to(torch.float64)
    cache = FeatureCache(tmp_path)
    tokens = ClipFeaturizer(wide, num_frames=NUM_FRAMES, cache=cache)([ClipRef(videos[0])])
    assert tokens.dtype == torch.float32 and tokens.device.type == "cpu"
    torch.testing.assert_close(tokens, reference, atol=1e-5, rtol=1e-5)


def test_large_frames_reach_the_float_conversion_scaled_down(
    videos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames above MAX_RESIZE_INPUT_PIXELS are scaled while decoding, so the float32
    conversion never sees them at full size; the features stay close to full-size ones."""
    from stepdiff.video import transforms

    convert = transforms.frames_to_tensor
    seen: list[tuple[int, ...]] = []

    def recording(frames, *args):  # noqa: ANN001, ANN002, ANN202
        seen.append(frames.shape)
        return convert(frames, *args)

    clip = ClipRef(videos[0])  # 64x64 frames
    full_size = _direct(TinyFrameEncoder(), clip)
    monkeypatch.setattr(transforms, "MAX_RESIZE_INPUT_PIXELS", 48 * 48)
    monkeypatch.setattr(transforms, "frames_to_tensor", recording)
    featurizer = ClipFeaturizer(TinyFrameEncoder(), num_frames=NUM_FRAMES)
    pixels = featurizer.frames(clip)
    assert seen == [(NUM_FRAMES, 48, 48, 3)]
    assert pixels.shape == (NUM_FRAMES, 3, 32, 32)
    tokens = featurizer([clip])[0]
    assert torch.allclose(tokens, full_size, atol=0.05)


def test_frames_within_the_resize_limit_are_converted_as_decoded(
    videos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepdiff.video import transforms
    from stepdiff.video.decode import read_clip_frames

    clip = ClipRef(videos[0])
    monkeypatch.setattr(transforms, "MAX_RESIZE_INPUT_PIXELS", 64 * 64)
    encoder = TinyFrameEncoder()
    expected = transforms.frames_to_tensor(
        read_clip_frames(clip, NUM_FRAMES).frames, encoder.image_size, encoder.mean, encoder.std
    )
    assert torch.equal(ClipFeaturizer(encoder, num_frames=NUM_FRAMES).frames(clip), expected)
