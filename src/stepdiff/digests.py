"""Content digests of files: model files checked against a pinned sha256, and inputs
named in run fingerprints (datagen stages, eval's run.json)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time: a 1 GB model never sits in memory whole


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """A short content digest of an input file, for fingerprints."""
    return file_sha256(path)[:16]
