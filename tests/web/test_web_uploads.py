"""Where uploads live and how long: the quota, expiry, and folders left by killed servers."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stepdiff.errors import ConfigError
from stepdiff.web import create_app
from stepdiff.web.clips import ClipStore, StoredClip, UploadQuota, WebError
from stepdiff.web.folders import FOLDER_PREFIX, LOCK_NAME, uploads_root

BASE_URL = "http://127.0.0.1:7860"
MB = 2**20


class Clock:
    """A monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def put(store: ClipStore, path: Path, name: str = "step.mp4") -> StoredClip:
    """Upload ``path`` into ``store`` as the app does: receive, then check and publish."""
    partial = asyncio.run(store.receive(name, _chunks(path.read_bytes())))
    return store.add_upload(name, partial)


def clip_files(store: ClipStore) -> list[Path]:
    return sorted(p for p in store.folder.iterdir() if p.name != LOCK_NAME)


@pytest.fixture()
def make_store(tmp_path: Path) -> Iterator:
    stores: list[ClipStore] = []

    def make(quota: UploadQuota, clock: Clock | None = None) -> ClipStore:
        store = ClipStore(
            max_upload_bytes=5 * MB, quota=quota, root=tmp_path, clock=clock or time.monotonic
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def upload(client: TestClient, path: Path):
    url = f"/api/upload?name={path.name}"
    return client.post(url, content=path.read_bytes(), headers={"Content-Type": "video/mp4"})


# --- the quota -----------------------------------------------------------------------------


def test_past_max_uploads_the_least_recently_used_is_deleted(
    fake_assistant, synthetic_clip_path: Path
) -> None:
    app = create_app(fake_assistant(), quota=UploadQuota(max_uploads=2))
    with TestClient(app, base_url=BASE_URL) as client:
        first, second = (upload(client, synthetic_clip_path).json()["id"] for _ in range(2))
        # Using the first makes the second the least recently used.
        pair = {"reference": {"id": first}, "candidate": {"id": first}}
        assert client.post("/api/ask", json={**pair, "question": "q?"}).status_code == 200
        third = upload(client, synthetic_clip_path).json()["id"]
        store = app.state.store
        assert sorted(p.stem for p in clip_files(store)) == sorted([first, third])
        gone = client.post(
            "/api/ask",
            json={"reference": {"id": second}, "candidate": {"id": first}, "question": "q?"},
        )
        assert gone.status_code == 404
        assert gone.json()["error"] == f"unknown clip {second!r} (upload it again?)"


def test_past_max_total_bytes_the_oldest_uploads_are_deleted(
    make_store, synthetic_clip_path: Path
) -> None:
    size = synthetic_clip_path.stat().st_size
    store = make_store(UploadQuota(max_total_bytes=int(2.5 * size)))
    clips = [put(store, synthetic_clip_path) for _ in range(4)]
    assert [p.stem for p in clip_files(store)] == sorted(c.id for c in clips[2:])
    assert sum(p.stat().st_size for p in clip_files(store)) <= 2.5 * size
    with pytest.raises(WebError, match="unknown clip"):
        store.get(clips[1].id)


def test_uploads_in_progress_that_fill_the_quota_refuse_another(
    make_store, synthetic_clip_path: Path
) -> None:
    data = synthetic_clip_path.read_bytes()
    store = make_store(UploadQuota(max_total_bytes=len(data)))
    kept = put(store, synthetic_clip_path)

    async def scenario() -> None:
        halfway = asyncio.Event()
        finish = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield data[: len(data) // 2 + 1]
            halfway.set()
            await finish.wait()
            yield data[len(data) // 2 + 1 :]

        first = asyncio.ensure_future(store.receive("first.mp4", slow()))
        await halfway.wait()
        with pytest.raises(WebError, match="upload space of .* MB is taken") as refused:
            await store.receive("second.mp4", _chunks(data))
        assert refused.value.status == 507
        finish.set()
        store.add_upload("first.mp4", await first)

    asyncio.run(scenario())
    # The kept upload made room for the first; the refused one left nothing behind.
    assert kept.id not in {p.stem for p in clip_files(store)}
    assert len(clip_files(store)) == 1


def test_uploads_unused_for_the_ttl_are_deleted(make_store, synthetic_clip_path: Path) -> None:
    clock = Clock()
    store = make_store(UploadQuota(ttl_s=60), clock)
    idle, used = put(store, synthetic_clip_path), put(store, synthetic_clip_path)
    clock.now += 40
    store.get(used.id)  # a use restarts its hour
    clock.now += 30
    store.expire()  # what the app runs every minute, with or without requests
    assert [p.stem for p in clip_files(store)] == [used.id]
    with pytest.raises(WebError, match="unknown clip"):
        store.get(idle.id)
    clock.now += 61
    with pytest.raises(WebError, match="unknown clip"):
        store.get(used.id)  # expired on access too, not only by the minutely sweep
    assert clip_files(store) == []


# --- the folders -----------------------------------------------------------------------


def test_uploads_folder_is_a_locked_per_user_folder(uploads_cache: Path, fake_assistant) -> None:
    app = create_app(fake_assistant())
    folder = app.state.store.folder
    try:
        assert folder.parent == uploads_cache / "web-uploads" == uploads_root()
        assert folder.name.startswith(f"{FOLDER_PREFIX}{os.getpid()}-")
        assert (folder / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with (folder / LOCK_NAME).open() as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        app.state.store.close()
    assert not folder.exists()


KILLED_SERVER = """
import sys, time
from stepdiff.web.clips import ClipStore
store = ClipStore(max_upload_bytes=1)
(store.folder / "uabc.mp4").write_bytes(b"an upload")
print(store.folder, flush=True)
time.sleep(600)
"""


def test_a_killed_servers_folder_is_deleted_when_the_next_starts(
    uploads_cache: Path, fake_assistant
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        killed = Path(server.stdout.readline().strip())
        assert killed.parent == uploads_cache / "web-uploads"
        # While its server lives, another server leaves its folder alone.
        create_app(fake_assistant()).state.store.close()
        assert (killed / "uabc.mp4").is_file()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
        server.stdout.close()
    assert (killed / "uabc.mp4").is_file()  # SIGKILL left it behind
    app = create_app(fake_assistant())
    try:
        assert not killed.exists()
        assert [p.name for p in uploads_root().iterdir()] == [app.state.store.folder.name]
    finally:
        app.state.store.close()


def test_an_unlocked_folder_is_deleted_only_once_older_than_the_ttl(
    tmp_path: Path, make_store
) -> None:
    old, young = tmp_path / f"{FOLDER_PREFIX}1-old", tmp_path / f"{FOLDER_PREFIX}2-young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "u1.mp4").write_bytes(b"x")
    hour_ago = time.time() - 3700
    os.utime(old, (hour_ago, hour_ago))
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    make_store(UploadQuota(ttl_s=3600))
    assert not old.exists() and young.exists() and unrelated.exists()


def test_an_unwritable_uploads_root_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cannot make an uploads folder in .*file/web"):
        ClipStore(max_upload_bytes=1, root=blocker / "web")
