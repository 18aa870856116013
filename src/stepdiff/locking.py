"""Exclusive, non-blocking locks that keep two runs from writing into the same files.

A second run is refused at once (it never waits): it would otherwise interleave its
lines with the first run's, or resume from files the first is still writing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from stepdiff.errors import ConfigError

FOLDER_LOCK = ".lock"


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, busy_message: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` while the block runs; ConfigError with
    ``busy_message`` when another process holds it."""
    from filelock import FileLock, Timeout  # imported here: the CLI imports this module

    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(busy_message) from None
    try:
        yield
    finally:
        lock.release()


def lock_folder(folder: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on a run's output ``folder`` (created if missing).

    The lock file stays in the folder after the run: deleting it on release would let a
    run that opened the old file and a run that creates a new one both hold "the" lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / FOLDER_LOCK
    return exclusive_lock(lock_path, f"{folder} is in use by another run (lock {lock_path})")
