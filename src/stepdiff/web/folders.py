"""Each web server's uploads folder, and the clean-up of folders whose server died.

Every server keeps its uploads in its own ``stepdiff-web-*`` folder under
:func:`uploads_root` (``$STEPDIFF_CACHE/web-uploads``, by default
``~/.cache/stepdiff/web-uploads``). A server deletes its folder when it stops; one
killed outright (SIGKILL, power loss) cannot, so each server, when it starts, deletes
the folders of servers that are gone.

"Gone" is decided by a lock, not by a process id: the folder's ``server.pid`` file is
held under an exclusive ``flock`` for the server's lifetime. The system drops the lock
when the process ends however it ends, and a reused pid cannot keep a dead server's
folder alive. (The pid inside is for people looking at the folder.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

from stepdiff.paths import cache_root

try:
    import fcntl
except ImportError:  # no flock (Windows): stale folders are then found by age alone
    fcntl = None  # type: ignore[assignment]

FOLDER_PREFIX = "stepdiff-web-"
CREATING_PREFIX = ".creating-"  # not yet locked: only removed once old
LOCK_NAME = "server.pid"


def uploads_root() -> Path:
    """The per-user folder that holds every server's uploads folder."""
    return cache_root() / "web-uploads"


def _lock(handle: IO[str]) -> bool:
    """Take ``handle``'s exclusive lock without waiting; False if a live process has it."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _age_s(path: Path) -> float:
    """Seconds since ``path`` last changed (0 if it vanished meanwhile)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return 0.0


def _is_stale(folder: Path, max_age_s: float) -> bool:
    """Whether ``folder``'s server is gone: its lock is free, or it has no lock and is old."""
    lock = folder / LOCK_NAME
    if fcntl is None or not lock.is_file():
        # No lock to ask (killed while being created, or no flock here): go by age.
        return _age_s(folder) > max_age_s
    try:
        handle = lock.open("r")
    except FileNotFoundError:
        return False  # its server is deleting it at this moment
    with handle:
        return _lock(handle)


def remove_stale_folders(root: Path, max_age_s: float) -> list[Path]:
    """Delete the uploads folders under ``root`` whose server is gone; returns them."""
    if not root.is_dir():
        return []
    removed = []
    for folder in sorted(root.iterdir()):
        prefixed = folder.name.startswith((FOLDER_PREFIX, CREATING_PREFIX))
        if prefixed and folder.is_dir() and not folder.is_symlink():
            if _is_stale(folder, max_age_s):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


class UploadFolder:
    """This server's own uploads folder, locked (see the module) until :meth:`close`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Locked under a name no clean-up deletes while young, then renamed into place:
        # a server starting meanwhile never sees a prefixed folder with a free lock.
        creating = Path(tempfile.mkdtemp(prefix=CREATING_PREFIX, dir=root))
        try:
            self._lock_file = (creating / LOCK_NAME).open("w")
            if fcntl is not None:
                _lock(self._lock_file)
            self._lock_file.write(f"{os.getpid()}\n")
            self._lock_file.flush()
            self.path = root / f"{FOLDER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            creating.rename(self.path)
        except BaseException:
            shutil.rmtree(creating, ignore_errors=True)
            raise

    def close(self) -> None:
        """Delete the folder and drop its lock (again: no effect)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock_file.close()
