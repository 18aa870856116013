"""The clips a web server knows: example videos and uploads, addressed by opaque ids.

The page never sends a file path: it names a clip by the id this module gave it (``e1``
for an example, ``u<hex>`` for an upload), so a request cannot reach any other file on
the server. Uploads are streamed into a per-server folder (see
:mod:`stepdiff.web.folders`) under a temporary name and renamed only once they are
complete and decodable, so no reader ever sees half a file.

Uploads are bounded by an :class:`UploadQuota`: an upload unused for ``ttl_s`` is
deleted, and when a new upload would pass ``max_uploads`` or ``max_total_bytes`` the
least recently used uploads are deleted to make room (a page naming one gets "unknown
clip ... upload it again?"). Evicting rather than refusing keeps a long-running local
server usable without a restart; a request only fails (507) when the bytes still being
received by other uploads fill the quota on their own.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stepdiff.errors import ConfigError, StepDiffError, VideoError
from stepdiff.video.clip import VIDEO_EXTENSIONS, ClipRef
from stepdiff.video.decode import (
    END_TOLERANCE_FRAMES,
    check_frame_size,
    probe_video,
    read_clip_frames,
)
from stepdiff.web.folders import UploadFolder, remove_stale_folders, uploads_root

MB = 2**20


class WebError(StepDiffError):
    """A request the web app refuses, with the HTTP status to answer and a one-line reason."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadQuota:
    """How many uploads a server keeps, and for how long (``stepdiff serve`` flags)."""

    max_uploads: int = 20
    max_total_bytes: int = 2048 * MB
    ttl_s: float = 3600.0  # an upload unused this long is deleted


DEFAULT_QUOTA = UploadQuota()


@dataclass(frozen=True)
class StoredClip:
    """A video the server may read, with what the page shows about it."""

    id: str
    name: str  # what the user sees: the uploaded file's name or the example's
    path: Path
    duration: float  # seconds
    fps: float
    width: int
    height: int
    example: bool

    def to_dict(self) -> dict[str, object]:
        """The page's view: never the server path."""
        return {
            "id": self.id,
            "name": self.name,
            "duration": round(self.duration, 3),
            "fps": round(self.fps, 3),
            "width": self.width,
            "height": self.height,
            "example": self.example,
        }


def _display_name(name: str) -> str:
    """A file name from a browser, reduced to a short, printable base name."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or "upload"


def check_decodable(path: Path, label: str) -> tuple[float, float, int, int]:
    """(duration, fps, width, height) of a video that really decodes, else WebError.

    The header alone is not enough (a renamed text file can fail later, a truncated
    upload can have a good header): one frame from the middle is decoded too, unless
    the header declares frames above the decoder's limit (WebError 413).
    """
    try:
        info = probe_video(path)
        if not (math.isfinite(info.duration) and info.duration > 0):
            raise WebError(f"{label}: the video has no duration")
    except StepDiffError as error:
        raise _unreadable(error, path, label) from None
    try:
        check_frame_size(info)
    except VideoError as error:
        # 413 like an upload over the byte limit: the file is fine, only too big to take.
        raise WebError(str(error).replace(str(path), label), status=413) from None
    try:
        read_clip_frames(ClipRef(path), num_frames=1)
    except StepDiffError as error:
        raise _unreadable(error, path, label) from None
    return info.duration, info.fps, info.width, info.height


def _unreadable(error: StepDiffError, path: Path, label: str) -> WebError:
    """The 422 for a file that does not decode, naming it by ``label``, not its path."""
    message = str(error).replace(str(path), label)
    return WebError(f"{label} is not a video this server can read ({message})")


class ClipStore:
    """Examples given at start-up plus uploads kept in this server's uploads folder.

    Creating a store first checks the examples, then deletes the folders of servers that
    died (:func:`remove_stale_folders`), then makes its own; :meth:`close` deletes it.
    Thread-safe: uploads are checked in worker threads while requests read the store.
    ``clock`` (seconds, monotonic) is what upload ages are measured with.
    """

    def __init__(
        self,
        examples: Sequence[Path] = (),
        *,
        max_upload_bytes: int,
        quota: UploadQuota = DEFAULT_QUOTA,
        root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_upload_bytes = max_upload_bytes
        self.quota = quota
        self._clock = clock
        self._lock = threading.Lock()
        self._clips: dict[str, StoredClip] = {}
        # Uploads only, least recently used first: id -> (size in bytes, last use).
        self._uploads: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._receiving = 0  # bytes of partial files being received or checked
        # Examples first: a bad one must fail before any folder exists to leak.
        for index, path in enumerate(examples, start=1):
            path = Path(path)
            duration, fps, width, height = check_decodable(path, path.name)
            clip = StoredClip(f"e{index}", path.name, path, duration, fps, width, height, True)
            self._clips[clip.id] = clip
        root = uploads_root() if root is None else root
        try:
            remove_stale_folders(root, max_age_s=quota.ttl_s)
            self._folder = UploadFolder(root)
        except OSError as error:
            raise ConfigError(
                f"cannot make an uploads folder in {root} ({error.strerror or error}); "
                "set STEPDIFF_CACHE to a writable folder"
            ) from None
        self.folder = self._folder.path

    def examples(self) -> list[StoredClip]:
        with self._lock:
            return [clip for clip in self._clips.values() if clip.example]

    def get(self, clip_id: str) -> StoredClip:
        """The clip named ``clip_id``; using an upload makes it the most recently used."""
        with self._lock:
            self._expire_locked()
            clip = self._clips.get(clip_id)
            if clip_id in self._uploads:
                self._uploads[clip_id] = (self._uploads[clip_id][0], self._clock())
                self._uploads.move_to_end(clip_id)
        if clip is None:
            raise WebError(f"unknown clip {clip_id!r} (upload it again?)", status=404)
        return clip

    def expire(self) -> None:
        """Delete the uploads unused for longer than the quota's ``ttl_s``."""
        with self._lock:
            self._expire_locked()

    def _expire_locked(self) -> None:
        oldest_kept = self._clock() - self.quota.ttl_s
        expired = [key for key, (_, used) in self._uploads.items() if used < oldest_kept]
        for clip_id in expired:
            self._drop_locked(clip_id)

    def _drop_locked(self, clip_id: str) -> None:
        """Forget upload ``clip_id`` and delete its file (the lock is held)."""
        self._uploads.pop(clip_id)
        self._clips.pop(clip_id).path.unlink(missing_ok=True)

    def _reserve(self, size: int, name: str) -> None:
        """Count ``size`` more bytes being received, evicting the least recently used
        uploads to make room; WebError(507) when uploads in progress fill the quota."""
        with self._lock:
            self._expire_locked()
            self._receiving += size
            limit = self.quota.max_total_bytes
            while self._uploads and self._receiving + self._stored_locked() > limit:
                self._drop_locked(next(iter(self._uploads)))
            if self._receiving > limit:
                self._receiving -= size
                raise WebError(
                    f"{_display_name(name)}: the server's upload space of {limit / MB:g} MB is "
                    "taken by uploads in progress; try again when they finish",
                    status=507,
                )

    def _release(self, size: int) -> None:
        with self._lock:
            self._receiving -= size

    def _stored_locked(self) -> int:
        return sum(size for size, _ in self._uploads.values())

    async def receive(self, name: str, chunks: AsyncIterator[bytes]) -> Path:
        """Stream an upload to a hidden partial file; WebError(413) past the size limit.

        Returns the partial file's path: :meth:`add_upload` checks and publishes it (its
        bytes count against the quota until then).
        """
        partial = self.folder / f".{uuid.uuid4().hex}.part"
        size = 0
        try:
            # Plain blocking writes: chunks are small and the disk is local, so this
            # costs the event loop far less than a thread hop per chunk would.
            with partial.open("wb") as out:
                async for chunk in chunks:
                    if size + len(chunk) > self.max_upload_bytes:
                        raise WebError(too_large_message(name, self.max_upload_bytes), status=413)
                    self._reserve(len(chunk), name)
                    size += len(chunk)
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            self._release(size)
            raise
        if size == 0:
            partial.unlink(missing_ok=True)
            raise WebError(f"{_display_name(name)} is empty (0 bytes)")
        return partial

    def add_upload(self, name: str, partial: Path) -> StoredClip:
        """Check that ``partial`` decodes, then rename it into place (blocking: decodes).

        Publishing it may evict the least recently used uploads (``max_uploads``).
        """
        label = _display_name(name)
        size = partial.stat().st_size
        try:
            duration, fps, width, height = check_decodable(partial, label)
        except BaseException:
            partial.unlink(missing_ok=True)
            self._release(size)
            raise
        suffix = Path(label).suffix.lower()
        clip_id = f"u{uuid.uuid4().hex}"
        # The decoder sniffs the container from the bytes; a known suffix is only a hint.
        final = self.folder / f"{clip_id}{suffix if suffix in VIDEO_EXTENSIONS else '.video'}"
        partial.replace(final)
        clip = StoredClip(clip_id, label, final, duration, fps, width, height, False)
        with self._lock:
            self._receiving -= size
            self._clips[clip_id] = clip
            self._uploads[clip_id] = (size, self._clock())
            while len(self._uploads) > self.quota.max_uploads:
                self._drop_locked(next(iter(self._uploads)))
        return clip

    def clip_ref(self, clip_id: str, start: float | None, end: float | None, role: str) -> ClipRef:
        """The ClipRef of a stored clip and an optional segment, checked against its length."""
        clip = self.get(clip_id)
        if start is None and end is None:
            return ClipRef(clip.path)
        start = 0.0 if start is None else float(start)
        end = clip.duration if end is None else float(end)
        where = f"{role} ({clip.name})"
        if not (math.isfinite(start) and math.isfinite(end)):
            raise WebError(f"{where}: segment bounds must be numbers")
        if start < 0 or end <= start:
            raise WebError(f"{where}: segment {start:g}-{end:g} s needs 0 <= start < end")
        # The decoder accepts an end up to half a frame past the duration (rounded ids).
        if start >= clip.duration or end > clip.duration + END_TOLERANCE_FRAMES / clip.fps:
            raise WebError(
                f"{where}: segment {start:g}-{end:g} s lies outside the {clip.duration:.2f} s clip"
            )
        return ClipRef(clip.path, start, min(end, clip.duration))

    def labels(self) -> dict[str, str]:
        """Server path -> display name, to keep paths out of messages sent to the page."""
        with self._lock:
            return {str(clip.path): clip.name for clip in self._clips.values()}

    def close(self) -> None:
        """Delete the uploads folder (examples are the user's files and stay)."""
        self._folder.close()


def too_large_message(name: str, limit: int) -> str:
    """The 413 message, also used when the request's Content-Length already says so."""
    return f"{_display_name(name)} is larger than the upload limit of {limit / MB:g} MB"
