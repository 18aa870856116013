"""On-disk cache of frozen encoder features, one safetensors file per clip.

Features of a frozen encoder depend only on (encoder, video file, segment, number of
frames, input size), so they are computed once and reused by training epochs, eval
runs and the CLI. Entries are written atomically (temp file + ``os.replace``), so a
reader never sees half a file and concurrent writers of one key cannot corrupt it.

The cache never fails a run: an entry that does not hold what its key promises
(unreadable, wrong shape or dtype, non-finite values) is deleted and recomputed, and a
cache folder that cannot be written to is read from but no longer written to. Each of
the two is reported once per :class:`FeatureCache`, as a logged warning (on stderr
unless the application configures logging).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from stepdiff.errors import VideoError, first_line
from stepdiff.paths import cache_root
from stepdiff.video.clip import ClipRef

log = logging.getLogger(__name__)

# Bump when the meaning of a cached tensor changes (frame sampling, resizing, layout),
# so stale entries are missed instead of silently reused.
# 2: the video's content fingerprint joined the key, and frames above 1080p are scaled
# down while decoding.
KEY_VERSION = 2
_TENSOR_NAME = "features"
_SUFFIX = ".safetensors"
_TEMP_SUFFIX = ".tmp"
# Bytes hashed at each end of a video. Containers keep their index (mp4 moov, mkv
# cues) and first frames there, so any re-encode or different clip changes them, and
# the cost stays ~2 ms whatever the file's size.
_FINGERPRINT_SPAN = 1 << 20


def video_identity(path: Path) -> tuple[str, int, int, str]:
    """(resolved absolute path, size in bytes, mtime in ns, content fingerprint).

    Changes when the file is edited, and also when it is replaced by another file of
    the same size whose mtime was kept (copied with ``cp -p``, restored from an archive).
    """
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
        # ctime and inode in the memo key: any write, rename or utime of the file
        # changes its ctime (which no user can set back), so an unchanged stamp means
        # unchanged bytes and the file need not be reread for every batch.
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
        fingerprint = _content_fingerprint(str(resolved), stamp)
    except OSError as error:
        raise VideoError(f"{path}: cannot read video ({error.strerror})") from None
    return str(resolved), stat.st_size, stat.st_mtime_ns, fingerprint


@functools.lru_cache(maxsize=65536)
def _content_fingerprint(path: str, stamp: tuple[int, ...]) -> str:
    """sha256 hex of the file's size and its first and last ``_FINGERPRINT_SPAN`` bytes.

    ``stamp`` (the file's stat fields) is not read: it only keys the memo.
    """
    with open(path, "rb") as handle:
        head = handle.read(_FINGERPRINT_SPAN)
        # Past the head, never over it: a file shorter than two spans is hashed whole.
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(len(head), size - _FINGERPRINT_SPAN))
        tail = handle.read(_FINGERPRINT_SPAN)
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    digest.update(head)
    digest.update(tail)
    return digest.hexdigest()


def feature_key(cache_id: str, clip: ClipRef, num_frames: int, image_size: int) -> str:
    """sha256 hex key of one clip's features under one encoder and sampling setup."""
    path, size, mtime_ns, fingerprint = video_identity(clip.path)
    parts = {
        "version": KEY_VERSION,
        "encoder": cache_id,
        "video": [path, size, mtime_ns, fingerprint],
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
    :meth:`get` outcomes (for tests and benchmarks). :attr:`writable` turns False after
    the first failed :meth:`put`; the cache is then only read.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_root() / "features"
        self.hits = 0
        self.misses = 0
        self.writable = True
        self._warned_corrupt = False

    def path(self, key: str) -> Path:
        """The file of ``key`` (two-level layout keeps directories small)."""
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def get(
        self,
        key: str,
        shape: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor | None:
        """The cached tensor, or None on a miss.

        A miss is an absent or unreadable file, or a corrupt entry: one that does not
        parse, is not of ``dtype`` (features are stored fp32) or, when given, of
        ``shape`` (e.g. ``(T, P, D)``), or holds NaN/inf. A corrupt entry is deleted
        (the caller recomputes it) and the first one is reported.
        """
        path = self.path(key)
        try:
            # Read the whole file rather than mmap it: the tensor then owns its memory
            # and no handle stays open on a file another process may replace.
            data = path.read_bytes()
        except OSError:
            # Absent (the usual miss), or a folder that cannot be read: put() will
            # report a cache folder that cannot be used.
            return self._miss()
        tensor, problem = _decode_entry(data, shape, dtype)
        if tensor is None:
            self._discard(path, problem)
            return self._miss()
        self.hits += 1
        return tensor

    def put(self, key: str, tensor: torch.Tensor) -> Path | None:
        """Store ``tensor`` under ``key``; returns the entry's path, or None if the
        cache folder cannot be written to (reported once; later puts are skipped)."""
        if not self.writable:
            return None
        try:
            return self._write(key, tensor)
        except OSError as error:
            # Read-only folder, a path under a regular file, a full disk: features are
            # still computed, only not kept, so the run goes on.
            self.writable = False
            log.warning(
                "feature cache: cannot write to %s (%s); continuing without storing features",
                self.root,
                error.strerror or error,
            )
            return None

    def _write(self, key: str, tensor: torch.Tensor) -> Path:
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

    def _miss(self) -> None:
        """Count a miss; returns None, :meth:`get`'s miss value."""
        self.misses += 1
        return None

    def _discard(self, path: Path, problem: str) -> None:
        """Delete the corrupt entry at ``path``, warning about the first one only."""
        # Deleted rather than left for put() to overwrite: a run stopped before the
        # recompute would otherwise meet (and report) the same entry next time.
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # read-only cache: the entry stays a miss, nothing worse
        if not self._warned_corrupt:
            self._warned_corrupt = True
            log.warning("feature cache: ignoring corrupt entry %s (%s); recomputing", path, problem)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"


def _decode_entry(
    data: bytes, shape: Sequence[int] | None, dtype: torch.dtype
) -> tuple[torch.Tensor, str] | tuple[None, str]:
    """(tensor, "") for a sound entry's bytes, else (None, what is wrong with them)."""
    try:
        tensor = load_safetensors(data)[_TENSOR_NAME]
    except Exception as error:
        # Truncated or garbled (copied partially, disk full under an older writer):
        # safetensors raises its own error types, and a foreign file a KeyError.
        return None, f"unreadable: {first_line(error)}"
    if tensor.dtype != dtype:
        return None, f"dtype {tensor.dtype}, expected {dtype}"
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        return None, f"shape {tuple(tensor.shape)}, expected {tuple(shape)}"
    if not bool(torch.isfinite(tensor).all()):
        # NaN/inf features come from a broken encode (fp16 overflow) or bit rot; used
        # as they are, they would turn every score of the clip into NaN.
        return None, "non-finite values"
    return tensor, ""
