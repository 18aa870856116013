"""The de-quantised GGUF cache: stale copies of a changed or removed GGUF are deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stepdiff.llm.loading import SOURCE_FILE, _gguf_identity, _remove_stale_copies, gguf_cache_dir


def _folder(root: Path, name: str, source: dict | None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x")
    if source is not None:
        (folder / SOURCE_FILE).write_text(json.dumps(source))
    return folder


def test_stale_copies_are_removed_and_others_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STEPDIFF_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "pkg" / "Model.Q4.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"old weights")
    old_identity = _gguf_identity(gguf)
    # A reinstall: same path, new contents and mtime.
    gguf.write_bytes(b"new weights!")
    os.utime(gguf, ns=(old_identity["mtime_ns"] + 10**9, old_identity["mtime_ns"] + 10**9))
    keep = gguf_cache_dir(gguf)
    root = keep.parent
    _folder(root, keep.name, _gguf_identity(gguf))
    stale = _folder(root, "Model.Q4-0000000000000001", old_identity)
    gone = _folder(
        root, "Model.Q4-0000000000000002", {**old_identity, "gguf": str(tmp_path / "nope.gguf")}
    )
    unknown = _folder(root, "Model.Q4-0000000000000003", None)
    other_model = _folder(root, "Other-0000000000000004", old_identity)

    _remove_stale_copies(gguf, keep)

    assert keep.is_dir() and unknown.is_dir() and other_model.is_dir()
    assert not stale.exists() and not gone.exists()
