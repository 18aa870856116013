"""On-disk cache of frozen encoder features, one safetensors file per clip.

Features of a frozen encoder depend only on (encoder, video file, segment, number of
frames, input size), so they are computed once and reused by training epochs, eval
runs and the CLI. Entries are written atomically (temp file + ``os.replace``), so a
reader never sees half a file and concurrent writers of one key cannot corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from stepdiff.errors import VideoError
from stepdiff.paths import cache_root
from stepdiff.video.clip import ClipRef

# Bump when the meaning of a cached tensor changes (frame sampling, resizing, layout),
# so stale entries are missed instead of silently reused.
KEY_VERSION = 2  # 2: frames above 1080p are scaled down while decoding
_TENSOR_NAME = "features"
_SUFFIX = ".safetensors"
_TEMP_SUFFIX = ".tmp"


def video_identity(path: Path) -> tuple[str, int, int]:
    """(resolved absolute path, size in bytes, mtime in ns): changes when the file is edited."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise VideoError(f"{path}: cannot read video ({error.strerror})") from None
    return str(resolved), stat.st_size, stat.st_mtime_ns


def feature_key(cache_id: str, clip: ClipRef, num_frames: int, image_size: int) -> str:
    """sha256 hex key of one clip's features under one encoder and sampling setup."""
    path, size, mtime_ns = video_identity(clip.path)
    parts = {
        "version": KEY_VERSION,
        "encoder": cache_id,
        "video": [path, size, mtime_ns],
        # repr keeps full float precision (2.5 and 2.5000001 are different segments);
        # float() first so that ClipRef(p, 1, 2) and ClipRef(p, 1.0, 2.0) share a key.
        "segment": None if clip.start is None else [repr(float(clip.start)), repr(float(clip.end))],
        "num_frames": num_frames,
        "image_size": image_size,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


class FeatureCache:
    """Feature tensors on disk under ``root``, addressed by :func:`feature_key` keys.

    ``root`` defaults to ``cache_root() / "features"``. Files live at
    ``root/<key[:2]>/<key>.safetensors``. :attr:`hits` and :attr:`misses` count
    :meth:`get` outcomes (for tests and benchmarks).
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_root() / "features"
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """The file of ``key`` (two-level layout keeps directories small)."""
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def get(self, key: str) -> torch.Tensor | None:
        """The cached tensor, or None on a miss (absent, truncated or corrupt entry)."""
        path = self.path(key)
        try:
            # Read the whole file rather than mmap it: the tensor then owns its memory
            # and no handle stays open on a file another process may replace.
            tensor = load_safetensors(path.read_bytes()).get(_TENSOR_NAME)
        except Exception:
            # Absent, or truncated/garbled (e.g. copied partially, disk full under an
            # older writer): a miss either way; the caller recomputes and put() overwrites.
            tensor = None
        if tensor is None:
            self.misses += 1
            return None
        self.hits += 1
        return tensor

    def put(self, key: str, tensor: torch.Tensor) -> Path:
        """Store ``tensor`` under ``key`` atomically; returns the entry's path.

        The bytes go to a uniquely named temp file in the entry's directory, are
        fsynced, then renamed over the entry. A crash leaves at most a stray
        ``*.tmp`` file, which :meth:`get` never reads; concurrent writers each rename
        a complete file, and the last rename wins.
        """
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = save_safetensors(
            {_TENSOR_NAME: tensor.detach().to("cpu").contiguous()},
            metadata={"key": key, "shape": json.dumps(list(tensor.shape))},
        )
        fd, temp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=_TEMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            # Also on KeyboardInterrupt: leave no half-written temp file behind.
            Path(temp_name).unlink(missing_ok=True)
            raise
        return path

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"
