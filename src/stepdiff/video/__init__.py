"""The video layer: clip references, probing and frame sampling, frame transforms and
synthetic test clips.

``frames_to_tensor`` needs torch, which takes seconds to import; it is loaded on first
use so that code needing only clips or decoding (the CLI's argument checks, say) stays
quick to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepdiff.video.clip import ClipId, ClipRef, find_video, parse_clip_id, resolve_clip
from stepdiff.video.decode import (
    SampledFrames,
    VideoInfo,
    probe_video,
    read_clip_frames,
    read_clip_frames_sequential,
    sample_times,
)
from stepdiff.video.synthetic import (
    SceneSpec,
    decode_frame_index_code,
    render_synthetic_frame,
    write_synthetic_clip,
)

if TYPE_CHECKING:
    from stepdiff.video.transforms import frames_to_tensor

__all__ = [
    "ClipId",
    "ClipRef",
    "SampledFrames",
    "SceneSpec",
    "VideoInfo",
    "decode_frame_index_code",
    "find_video",
    "frames_to_tensor",
    "parse_clip_id",
    "probe_video",
    "read_clip_frames",
    "read_clip_frames_sequential",
    "render_synthetic_frame",
    "resolve_clip",
    "sample_times",
    "write_synthetic_clip",
]


def __getattr__(name: str) -> Any:
    if name == "frames_to_tensor":
        from stepdiff.video.transforms import frames_to_tensor

        return frames_to_tensor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
