"""Probe videos and sample frames from clips with PyAV.

Any container and codec that FFmpeg reads will do. Times are in seconds from the start
of the video stream (its first presentation timestamp), so a segment 2.5-9 means the
same thing whatever the container's own timestamp origin is.

Frame selection rule, shared by both readers so that they return identical frames:
the clip [start, end] is cut into ``num_frames`` equal bins (:func:`sample_times`) and
each bin centre ``t`` gets the frame on screen at ``t``: the last frame shown at or
before ``t`` (the first frame, if ``t`` precedes it). Past the last frame, that frame
stays on screen for one frame period (and the half-frame end tolerance). Two bins may
never resolve to the same frame: a clip holding fewer distinct frames than asked is an
error.

Frames above :data:`MAX_FRAME_PIXELS` are refused from the stream's header, before any
is decoded; callers that only need small frames ask for them with ``fit_pixels``, and
the decoder's RGB converter scales them, so a full-size RGB frame never exists.

Every failure is raised as :class:`stepdiff.errors.VideoError` with a one-line message
that names the file; no PyAV/FFmpeg exception type escapes this module.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.error
import av.stream
import av.video.stream
import numpy as np

from stepdiff.errors import VideoError
from stepdiff.video.clip import ClipRef

TIME_EPSILON = 1e-6
"""Seconds of slack when comparing a frame time with a target: absorbs float rounding
between a target and a timestamp that represent the same instant."""

END_TOLERANCE_FRAMES = 0.5
"""A segment may end up to this many frame periods past the video's duration (clip ids
round their bounds); it is then clipped to the duration."""

_MAX_SEEK_BACKOFFS = 8

SKIP_MARGIN_FRAMES = 2.0
"""While the seeking reader decodes forward to a target, it lets the decoder skip
non-reference frames shown more than this many frame periods before the target. No
other frame is predicted from them, and at a steady frame rate the frame on screen at
the target was shown less than one period before it; where the stream has a gap, the
reader notices the skipped candidate and decodes that target again without skipping."""

_EXACT_NONREF_CODECS = frozenset({"h264", "mpeg1video", "mpeg2video", "mpeg4"})
"""Codecs whose non-reference frames (H.264 nal_ref_idc 0, MPEG B-pictures) are never
used to predict another frame, so that skipping them leaves every other frame
bit-identical. Left out on purpose: HEVC, whose "sub-layer non-reference" pictures may
still be referenced by higher temporal layers, and VP8, whose decoder also drops a
skipped frame's golden/altref buffer copies."""

MAX_FRAME_PIXELS = 7680 * 4320
"""Largest frame (width x height, 33.2 MP: 8K UHD) the readers accept. The size is read
from the stream's header before any frame is decoded: a file of a few hundred KB can
declare 16K frames, each taking 400 MB as RGB and the decoder's buffers besides."""


# --- probing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a file's header (no decoding)."""

    path: Path
    duration: float  # seconds
    fps: float  # nominal frames per second
    width: int
    height: int
    codec: str  # FFmpeg's decoder name, e.g. "h264"
    has_audio: bool


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(error: Exception) -> str:
    """FFmpeg's own words for an error, on one line and without the path it repeats."""
    strerror = getattr(error, "strerror", None)
    return _one_line(strerror or str(error) or type(error).__name__)


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; every failure becomes a VideoError naming the file."""
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if not path.is_file():
        raise VideoError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{path}: not a readable video file ({_describe(error)})") from None
    try:
        yield container
    finally:
        container.close()


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    """The first real video stream: cover art in audio files is a 'video' stream too."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({stream.type for stream in container.streams})
    found = ", ".join(kinds) if kinds else "none: truncated or not a media file?"
    raise VideoError(f"{path}: no video stream (streams found: {found})")


def _frame_rate(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return None


def _duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """Seconds, from the stream; else from the container (matroska and webm keep no
    per-stream duration); else from the frame count."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    fps = _frame_rate(stream)
    if stream.frames and fps:
        return stream.frames / fps
    return None


def _info(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> VideoInfo:
    fps = _frame_rate(stream)
    if fps is None:
        raise VideoError(f"{path}: the video stream declares no frame rate")
    duration = _duration(container, stream)
    if duration is None or not duration > 0:
        raise VideoError(f"{path}: the video's duration is unknown")
    return VideoInfo(
        path=path,
        duration=duration,
        fps=fps,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        codec=stream.codec_context.name,
        has_audio=bool(container.streams.audio),
    )


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, frame rate, size and codec of the video at ``path``, from its header."""
    path = Path(path)
    with _open(path) as container:
        return _info(container, _video_stream(container, path), path)


def check_frame_size(info: VideoInfo, max_pixels: int | None = None) -> None:
    """Raise VideoError if ``info``'s frames exceed ``max_pixels`` (default:
    :data:`MAX_FRAME_PIXELS`, read when called)."""
    limit = MAX_FRAME_PIXELS if max_pixels is None else max_pixels
    if info.width * info.height > limit:
        raise VideoError(
            f"{info.path}: frames of {info.width}x{info.height} "
            f"({info.width * info.height / 1e6:.3g} MP) exceed the limit of "
            f"{limit / 1e6:.3g} MP ({limit} pixels) per frame"
        )


def fitted_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to at most ``max_pixels`` pixels; the
    size itself if it fits already."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


# --- what to sample --------------------------------------------------------------------


def sample_times(start: float, end: float, num_frames: int) -> list[float]:
    """The centres of ``num_frames`` equal bins of [start, end], in seconds, ascending.

    E.g. ``sample_times(1.0, 3.0, 4) == [1.25, 1.75, 2.25, 2.75]``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if not end > start:
        raise ValueError(f"need start < end, got {start} and {end}")
    span = end - start
    # (2i + 1) / 2n rather than (i + 0.5) / n: exact whenever the bins are dyadic.
    return [start + span * (2 * i + 1) / (2 * num_frames) for i in range(num_frames)]


def _clip_bounds(clip: ClipRef, info: VideoInfo) -> tuple[float, float]:
    """The clip's [start, end] in seconds, checked against the video's duration."""
    if clip.start is None or clip.end is None:
        return 0.0, info.duration
    if clip.start >= info.duration:
        raise VideoError(
            f"{clip}: segment starts at {clip.start:g} s, at or after the end of the "
            f"{info.duration:.3f} s video"
        )
    if clip.end > info.duration + END_TOLERANCE_FRAMES / info.fps:
        raise VideoError(
            f"{clip}: segment ends at {clip.end:g} s, after the end of the "
            f"{info.duration:.3f} s video"
        )
    return clip.start, min(clip.end, info.duration)


# --- timestamps ------------------------------------------------------------------------


class _Timeline:
    """Converts between a stream's integer timestamps and seconds from its first frame."""

    def __init__(self, stream: av.video.stream.VideoStream, fps: float) -> None:
        self.time_base: Fraction = stream.time_base or Fraction(1, 1)
        self.origin: int = stream.start_time if stream.start_time is not None else 0
        self.frame_period = 1.0 / fps

    def seconds(self, timestamp: int) -> float:
        return float((timestamp - self.origin) * self.time_base)

    def timestamp(self, seconds: float) -> int:
        """The latest stream timestamp at or before ``seconds`` (+ epsilon)."""
        return self.origin + math.floor(Fraction(seconds + TIME_EPSILON) / self.time_base)

    def frame_time(self, frame: av.VideoFrame) -> float | None:
        # Some demuxers (raw streams, old AVIs) leave pts unset; the decode timestamp is
        # the best remaining guess of when the frame is shown.
        timestamp = frame.pts if frame.pts is not None else frame.dts
        return None if timestamp is None else self.seconds(timestamp)


class _Pick:
    """A decoded frame and its time. Converted to pixels at most once, and only when
    asked: most frames a reader passes over are never needed."""

    __slots__ = ("time", "_frame", "_pixels")

    def __init__(self, time: float, frame: av.VideoFrame) -> None:
        self.time = time
        self._frame: av.VideoFrame | None = frame
        self._pixels: np.ndarray | None = None

    def pixels(self, size: tuple[int, int] | None) -> np.ndarray:
        """(H, W, 3) uint8 RGB, scaled to ``size`` = (width, height) unless None; the
        first call's size holds for later calls."""
        if self._pixels is None:
            assert self._frame is not None
            self._pixels = _rgb(self._frame, size)
            self._frame = None  # let the decoder reuse the buffer
        return self._pixels


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """``frame`` as (H, W, 3) uint8 RGB, at ``size`` = (width, height) unless None."""
    if size is None or size == (frame.width, frame.height):
        return frame.to_ndarray(format="rgb24")
    width, height = size
    # Scaled in the same pass as the YUV -> RGB conversion, so the full-size RGB frame
    # never exists. FFmpeg's bilinear filter widens with the scale factor when shrinking,
    # so, like the antialiased resize of frames_to_tensor, it does not alias.
    scaled = frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR")
    return scaled.to_ndarray()


def _covers(last: _Pick | None, target: float, timeline: _Timeline) -> bool:
    """Whether ``last``, the stream's last frame, is still on screen at ``target``."""
    limit = timeline.frame_period * (1 + END_TOLERANCE_FRAMES)
    return last is not None and target < last.time + limit


# --- decoding helpers ------------------------------------------------------------------


def _packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.Packet | None]:
    """The stream's packets in decode order, then None: the cue to drain the decoder.

    A read error ends the stream early, as a truncated file does; the caller then finds
    too few frames and says so in terms of the clip.
    """
    demuxer = container.demux(stream)
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            break
        except (av.error.FFmpegError, OSError):
            break
        # PyAV ends a stream with an empty packet that drains the decoder; None does that.
        if packet.size:
            yield packet
    yield None


def _configure_decoder(stream: av.video.stream.VideoStream) -> None:
    """Let FFmpeg pick frame and/or slice threading for ``stream`` (before its first
    decode). Both readers use it, so benchmarks compare them on equal terms."""
    stream.thread_type = "AUTO"


def _decode(stream: av.video.stream.VideoStream, packet: av.Packet | None) -> list[av.VideoFrame]:
    """Frames the decoder releases after ``packet`` (None: all it still holds)."""
    try:
        if packet is None:
            return stream.codec_context.decode(None)
        return packet.decode()
    except av.error.InvalidDataError:
        # A damaged packet costs its own frame, not the clip: FFmpeg's tools skip it too.
        return []
    except av.error.EOFError:
        return []


def _key_id(packet: av.Packet) -> int | None:
    """Identifies a keyframe across two demuxers of the same file."""
    return packet.dts if packet.dts is not None else packet.pts


def _first_keyframe(packets: Iterator[av.Packet | None]) -> av.Packet | None:
    """Skip to the first keyframe packet: decoding from anything else shows garbage."""
    for packet in packets:
        if packet is not None and packet.is_keyframe:
            return packet
    return None


class _SeekFailed(Exception):
    """The demuxer refused to seek (damaged index, unseekable format)."""


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, timestamp: int
) -> None:
    """Position the demuxer at the last keyframe at or before ``timestamp``."""
    try:
        container.seek(timestamp, stream=stream, backward=True, any_frame=False)
        return
    except av.error.FFmpegError:
        pass
    try:
        # Before the first index entry some demuxers refuse a backward seek; the first
        # keyframe after the timestamp is then the stream's first.
        container.seek(timestamp, stream=stream, backward=False, any_frame=False)
    except av.error.FFmpegError as error:
        raise _SeekFailed(_describe(error)) from None


@dataclass(frozen=True)
class _Keyframe:
    """Where decoding must start for a target: the seek timestamp that lands on the
    keyframe, its id (None if unknown) and the time it is shown (None if unknown)."""

    seek_timestamp: int
    key: int | None
    shown: float | None


def _keyframe_before(
    probe: av.container.InputContainer,
    probe_stream: av.video.stream.VideoStream,
    timeline: _Timeline,
    target: float,
) -> _Keyframe:
    """The keyframe shown at or before ``target``, found with a probe-only demuxer.

    Demuxers index keyframes by decode time, which precedes the presentation time when
    frames are reordered; a seek may then land on a keyframe shown after the target, and
    the search steps back one keyframe at a time.
    """
    timestamp = timeline.timestamp(target)
    previous: int | None = None
    for _ in range(_MAX_SEEK_BACKOFFS):
        _seek(probe, probe_stream, timestamp)
        packet = _first_keyframe(_packets(probe, probe_stream))
        if packet is None:
            return _Keyframe(timestamp, None, None)
        key = _key_id(packet)
        shown = packet.pts if packet.pts is not None else key
        seconds = None if shown is None else timeline.seconds(shown)
        if seconds is None or seconds <= target + TIME_EPSILON:
            return _Keyframe(timestamp, key, seconds)
        if key == previous:  # stepping back changed nothing: this is the first keyframe
            return _Keyframe(timestamp, key, seconds)
        previous = key
        timestamp = min(timestamp, shown, key if key is not None else shown) - 1
    return _Keyframe(timeline.origin - 2**40, None, None)  # give up: decode from the start


_END = object()  # end of a packet iterator (whose own None means "drain the decoder")


# --- seeking reader --------------------------------------------------------------------


class _SeekingReader:
    """Finds the frame for each of an ascending series of target times by seeking.

    For each target it seeks to the last keyframe shown at or before it and decodes
    forward, unless that keyframe starts the GOP being decoded already: then it keeps
    decoding, which is what makes sampling several frames from one GOP cheap.

    Which keyframe a seek would land on is asked of a second, probe-only demuxer of the
    same file, because a seek flushes the decoder and so cannot be undone once found
    needless.

    With ``skip_nonref`` (and a codec in :data:`_EXACT_NONREF_CODECS`), the decoder
    skips non-reference frames shown well before the target (:data:`SKIP_MARGIN_FRAMES`):
    with B-frames that is about half the frames between a keyframe and a target. Frames
    the decoder was given but never returned are remembered; if one of them could be
    the frame on screen at the target, the target is decoded again from its keyframe
    without skipping, so the result is always the frame the sequential reader returns.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        probe: av.container.InputContainer,
        timeline: _Timeline,
        path: Path,
        skip_nonref: bool = True,
    ) -> None:
        self._container = container
        self._stream = _video_stream(container, path)
        self._probe = probe
        self._probe_stream = _video_stream(probe, path)
        self._timeline = timeline
        self._packets: Iterator[av.Packet | None] = iter(())
        self._ahead: deque[_Pick] = deque()  # decoded, not yet on screen
        self._shown: _Pick | None = None  # the frame on screen at the last target
        self._gop: int | None = None  # key id of the keyframe the decoder started from
        self._skip_nonref = skip_nonref and self._stream.codec_context.name in _EXACT_NONREF_CODECS
        self._skipping = False  # non-reference frames may be skipped until the next seek
        self._skip_before = timeline.origin  # skip frames whose pts precede this one
        self._missing: set[int] = set()  # pts of packets fed since the seek, no frame out yet
        self._skipped = False  # the decoder was let skip frames since the seek
        self._untracked = False  # ... and then given a packet without pts
        self.seeks = 0  # counters for tests and benchmarks
        self.decoded_frames = 0
        self.redecoded_targets = 0

    def frame_at(self, target: float) -> _Pick | None:
        """The frame on screen at ``target``; None when the stream ends before it."""
        margin = SKIP_MARGIN_FRAMES * self._timeline.frame_period
        self._skip_before = self._timeline.timestamp(target - margin)  # pts, not seconds: cheap
        pick = self._find(target)
        if self._may_have_skipped(pick, target):
            # Rare (frames missing near the target, damaged packets): decode this target
            # again from its keyframe, keeping every frame, as the sequential reader does.
            self.redecoded_targets += 1
            self._seek(self._keyframe_before(target).seek_timestamp, skip_nonref=False)
            pick = self._advance_to(target)
        return pick

    def _find(self, target: float) -> _Pick | None:
        upcoming = self._peek()
        if (
            self._shown is not None
            and upcoming is not None
            and upcoming.time > target + TIME_EPSILON
        ):
            return self._shown  # nothing new is shown before this target
        keyframe = self._keyframe_before(target)
        in_current_gop = (
            self._gop is not None and keyframe.key is not None and keyframe.key <= self._gop
        )
        if not in_current_gop:
            self._seek(keyframe.seek_timestamp)
        return self._advance_to(target)

    def _keyframe_before(self, target: float) -> _Keyframe:
        return _keyframe_before(self._probe, self._probe_stream, self._timeline, target)

    def _may_have_skipped(self, pick: _Pick | None, target: float) -> bool:
        """Whether a frame the decoder was given but did not return might be the one on
        screen at ``target`` instead of ``pick``.

        Decoders return frames in display order, so once a frame shown after the target
        came out, any frame at or before the target that has not is missing for good.
        """
        if not self._skipped:
            return False
        if pick is None or self._untracked:
            return True
        # ``pick`` shown after the target means no frame came out before it: then any
        # missing frame at or before the target would have been the one on screen.
        after = pick.time if pick.time <= target + TIME_EPSILON else -math.inf
        seconds = self._timeline.seconds
        return any(
            after + TIME_EPSILON < seconds(pts) <= target + TIME_EPSILON for pts in self._missing
        )

    def _seek(self, timestamp: int, skip_nonref: bool = True) -> None:
        _seek(self._container, self._stream, timestamp)
        self.seeks += 1
        self._skipping = skip_nonref and self._skip_nonref
        self._missing.clear()
        self._skipped = self._untracked = False
        self._stream.codec_context.skip_frame = "DEFAULT"
        packets = _packets(self._container, self._stream)
        first = _first_keyframe(packets)
        self._gop = _key_id(first) if first is not None else None
        self._packets = itertools.chain([first], packets) if first is not None else iter(())
        self._ahead.clear()
        self._shown = None

    def _peek(self) -> _Pick | None:
        """The next frame in display order, decoding as needed; None at the end."""
        while not self._ahead:
            packet = next(self._packets, _END)
            if packet is _END:
                return None
            if self._skipping and packet is not None:
                self._set_skip(packet)
            frames = _decode(self._stream, packet)
            self.decoded_frames += len(frames)
            for frame in frames:
                self._missing.discard(frame.pts)
                time = self._timeline.frame_time(frame)
                if time is not None:
                    self._ahead.append(_Pick(time, frame))
        return self._ahead[0]

    def _set_skip(self, packet: av.Packet) -> None:
        """Let the decoder skip ``packet``'s frame if it is a non-reference frame shown
        well before the target; remember the packet until its frame comes out."""
        if packet.pts is None:
            # Its frame could not be told missing: stop skipping, and if frames were
            # skipped already, have frame_at check this segment by decoding it again.
            self._untracked = self._skipped
            self._skipping = False
            skip = False
        else:
            self._missing.add(packet.pts)
            skip = packet.pts < self._skip_before
        self._skipped |= skip
        mode = "NONREF" if skip else "DEFAULT"
        if self._stream.codec_context.skip_frame != mode:
            self._stream.codec_context.skip_frame = mode

    def _advance_to(self, target: float) -> _Pick | None:
        """Take frames up to the last one shown at or before ``target``."""
        while (upcoming := self._peek()) is not None:
            if upcoming.time > target + TIME_EPSILON:
                # Before any frame of the stream, the first one stands in.
                return self._shown if self._shown is not None else upcoming
            self._shown = self._ahead.popleft()
        return self._shown if _covers(self._shown, target, self._timeline) else None


# --- sequential reader -----------------------------------------------------------------


def _pick_sequentially(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    timeline: _Timeline,
    targets: list[float],
) -> list[_Pick | None]:
    """Decode from the first packet on, choosing frames by the module's rule; stops
    once the last target is served."""
    picks: list[_Pick | None] = []
    shown: _Pick | None = None  # the latest frame decoded so far
    for packet in _packets(container, stream):
        for frame in _decode(stream, packet):
            time = timeline.frame_time(frame)
            if time is None:
                continue
            upcoming = _Pick(time, frame)
            # Targets before this frame's time get the frame on screen until now.
            while len(picks) < len(targets) and time > targets[len(picks)] + TIME_EPSILON:
                picks.append(shown if shown is not None else upcoming)
            if len(picks) == len(targets):
                return picks
            shown = upcoming
    for target in targets[len(picks) :]:
        picks.append(shown if _covers(shown, target, timeline) else None)
    return picks


# --- public readers --------------------------------------------------------------------


@dataclass(frozen=True)
class SampledFrames:
    """Frames sampled from a clip, in time order."""

    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    timestamps: list[float]  # presentation time (s) of each returned frame


def _assemble(
    clip: ClipRef,
    info: VideoInfo,
    targets: list[float],
    picks: list[_Pick | None],
    size: tuple[int, int] | None,
) -> SampledFrames:
    """Check the picks (all found, all distinct) and stack them into SampledFrames, at
    ``size`` = (width, height) unless None."""
    missing = [target for target, pick in zip(targets, picks, strict=True) if pick is None]
    if missing:
        raise VideoError(
            f"{clip}: no decodable frame at {missing[0]:.3f} s of the {info.duration:.3f} s "
            "video (file truncated or corrupt?)"
        )
    found = [pick for pick in picks if pick is not None]
    distinct = len({pick.time for pick in found})
    if distinct < len(targets):
        raise VideoError(
            f"{clip}: holds only {distinct} distinct decodable frames where {len(targets)} "
            "were asked (segment too short for num_frames?)"
        )
    try:
        frames = np.stack([pick.pixels(size) for pick in found])
    except ValueError:
        raise VideoError(f"{clip}: frame size changes within the clip") from None
    return SampledFrames(frames=frames, timestamps=[pick.time for pick in found])


_Picker = Callable[
    [
        av.container.InputContainer,
        av.video.stream.VideoStream,
        _Timeline,
        list[float],
        Path,
        tuple[int, int] | None,
    ],
    list[_Pick | None],
]


MAX_DECODE_WORKERS = 8
"""Most threads one clip is decoded with (one per core, at most one per GOP to decode)."""


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _balanced_runs(costs: list[float], parts: int) -> list[int]:
    """Cut ``costs`` into at most ``parts`` runs of neighbours whose largest sum is as
    small as it can be; returns each run's end index (exclusive)."""
    prefix = list(itertools.accumulate(costs, initial=0.0))
    count = len(costs)

    @functools.cache
    def best(start: int, runs: int) -> tuple[float, tuple[int, ...]]:
        whole = (prefix[count] - prefix[start], (count,))
        if runs == 1:
            return whole
        options = [whole]
        for end in range(start + 1, count):
            rest, ends = best(end, runs - 1)
            options.append((max(prefix[end] - prefix[start], rest), (end, *ends)))
        return min(options)

    return list(best(0, max(1, parts))[1])


def _plan_runs(
    keyframes: list[_Keyframe], targets: list[float], timeline: _Timeline, workers: int
) -> list[list[int]]:
    """Share the targets (by index) among at most ``workers`` readers.

    Targets that share a keyframe stay together, since one reader decodes their GOP once;
    the runs are balanced by the stretch of video each must decode (from its keyframes
    up to its targets). With any keyframe unknown, one reader takes every target.
    """
    if workers < 2 or any(keyframe.shown is None for keyframe in keyframes):
        return [list(range(len(targets)))]
    groups: list[list[int]] = []
    for index, keyframe in enumerate(keyframes):
        if groups and keyframe.key is not None and keyframes[groups[-1][0]].key == keyframe.key:
            groups[-1].append(index)
        else:
            groups.append([index])
    spans = [
        max(targets[group[-1]] - (keyframes[group[0]].shown or 0.0), 0.0) + timeline.frame_period
        for group in groups
    ]
    ends = _balanced_runs(spans, min(workers, len(groups)))
    starts = [0, *ends[:-1]]
    return [
        [index for group in groups[start:end] for index in group]
        for start, end in zip(starts, ends, strict=True)
    ]


def _pick_in_parallel(
    container: av.container.InputContainer,
    timeline: _Timeline,
    targets: list[float],
    runs: list[list[int]],
    path: Path,
    size: tuple[int, int] | None,
) -> list[_Pick | None]:
    """One seeking reader per run of targets, each on its own thread and demuxer.

    FFmpeg decodes without holding the interpreter lock, so the GOPs are decoded side by
    side; each decoder gets an equal share of the cores for its own threading. The first
    run reuses ``container``, whose decoder has not started yet.
    """
    threads = max(1, _usable_cores() // len(runs))

    def read(run: int, indices: list[int]) -> list[_Pick | None]:
        with ExitStack() as stack:
            own = container if run == 0 else stack.enter_context(_open(path))
            probe = stack.enter_context(_open(path))
            stream = _video_stream(own, path)
            _configure_decoder(stream)
            stream.thread_count = threads  # before the decoder's first packet
            reader = _SeekingReader(own, probe, timeline, path)
            picks = [reader.frame_at(targets[index]) for index in indices]
            for pick in picks:
                if pick is not None:
                    pick.pixels(size)  # convert while this decoder is open
            return picks

    with ThreadPoolExecutor(len(runs), thread_name_prefix="stepdiff-decode") as pool:
        results = list(pool.map(read, range(len(runs)), runs))
    return [pick for picks in results for pick in picks]


def _pick_by_seeking(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    timeline: _Timeline,
    targets: list[float],
    path: Path,
    size: tuple[int, int] | None,
    workers: int = 1,
) -> list[_Pick | None]:
    try:
        with _open(path) as probe:
            if workers > 1:
                probe_stream = _video_stream(probe, path)
                keyframes = [
                    _keyframe_before(probe, probe_stream, timeline, target) for target in targets
                ]
                runs = _plan_runs(keyframes, targets, timeline, workers)
                if len(runs) > 1:
                    return _pick_in_parallel(container, timeline, targets, runs, path, size)
            reader = _SeekingReader(container, probe, timeline, path)
            return [reader.frame_at(target) for target in targets]
    except _SeekFailed:
        pass
    # A file that cannot seek can still be read: from the start, on a fresh demuxer.
    with _open(path) as fresh:
        stream = _video_stream(fresh, path)
        _configure_decoder(stream)
        picks = _pick_sequentially(fresh, stream, timeline, targets)
        for pick in picks:
            if pick is not None:
                pick.pixels(size)  # convert while the decoder is open
        return picks


def _pick_from_start(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    timeline: _Timeline,
    targets: list[float],
    path: Path,
    size: tuple[int, int] | None,
) -> list[_Pick | None]:
    # Frames are converted (at ``size``) by _assemble, while this decoder is still open.
    return _pick_sequentially(container, stream, timeline, targets)


def _output_size(info: VideoInfo, fit_pixels: int | None) -> tuple[int, int] | None:
    """(width, height) to convert frames to: None keeps the video's own size."""
    if fit_pixels is None:
        return None
    size = fitted_size(info.width, info.height, fit_pixels)
    return None if size == (info.width, info.height) else size


def _sample(
    clip: ClipRef,
    num_frames: int,
    pick: _Picker,
    max_pixels: int | None,
    fit_pixels: int | None,
) -> SampledFrames:
    """Open the clip's file, check its frame size, work out the target times and let
    ``pick`` find frames."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    path = Path(clip.path)
    with _open(path) as container:
        try:
            stream = _video_stream(container, path)
            _configure_decoder(stream)
            info = _info(container, stream, path)
            check_frame_size(info, max_pixels)  # from the header: nothing decoded yet
            size = _output_size(info, fit_pixels)
            targets = sample_times(*_clip_bounds(clip, info), num_frames)
            picks = pick(container, stream, _Timeline(stream, info.fps), targets, path, size)
            # Inside the with block: frames become pixels while their decoder is open.
            return _assemble(clip, info, targets, picks, size)
        except (av.error.FFmpegError, OSError) as error:
            raise VideoError(f"{clip}: decoding failed ({_describe(error)})") from None


def read_clip_frames(
    clip: ClipRef,
    num_frames: int = 8,
    workers: int | None = None,
    *,
    max_pixels: int | None = None,
    fit_pixels: int | None = None,
) -> SampledFrames:
    """Sample ``num_frames`` frames from ``clip`` by seeking, never decoding the whole
    file: per target, seek to the keyframe before it and decode forward (or keep
    decoding when the target lies ahead in the GOP being decoded), letting the decoder
    skip the non-reference frames well before the target.

    Targets in different GOPs are decoded side by side on up to ``workers`` threads
    (default: one per usable core, at most :data:`MAX_DECODE_WORKERS`); ``workers=1``
    reads them one after another with FFmpeg's own decoder threading.

    Frames larger than ``max_pixels`` (default :data:`MAX_FRAME_PIXELS`) are refused
    from the stream's header with a VideoError, before any frame is decoded. With
    ``fit_pixels``, frames larger than that come out scaled down to fit (aspect kept,
    see :func:`fitted_size`) by the decoder's RGB converter; smaller ones are unchanged.

    Returns frames of shape (num_frames, H, W, 3), uint8 RGB, identical to those of
    :func:`read_clip_frames_sequential`.
    """
    if workers is None:
        workers = min(_usable_cores(), MAX_DECODE_WORKERS)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    picker = functools.partial(_pick_by_seeking, workers=workers)
    return _sample(clip, num_frames, picker, max_pixels, fit_pixels)


def read_clip_frames_sequential(
    clip: ClipRef,
    num_frames: int = 8,
    *,
    max_pixels: int | None = None,
    fit_pixels: int | None = None,
) -> SampledFrames:
    """Like :func:`read_clip_frames`, but decodes every frame from the start of the file
    up to the last target, without seeking. Slow; the reference that the seeking reader
    is tested and benchmarked against. ``max_pixels`` and ``fit_pixels`` work as there.

    Returns frames of shape (num_frames, H, W, 3), uint8 RGB.
    """
    return _sample(clip, num_frames, _pick_from_start, max_pixels, fit_pixels)
