"""The web app's JSON API (FastAPI TestClient) on the tiny real assistant, and its
concurrency on a slow fake one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stepdiff.data.categories import CATEGORIES
from stepdiff.web import create_app
from stepdiff.web.app import STATIC_DIR
from stepdiff.web.folders import LOCK_NAME

MB = 2**20
BASE_URL = "http://127.0.0.1:7860"  # what a browser on this machine names the server
VIDEO = {"Content-Type": "video/mp4"}


def local_client(app) -> TestClient:
    """A client that names the server as a browser on the same machine would."""
    return TestClient(app, base_url=BASE_URL)


def upload(client: httpx.Client | httpx.AsyncClient, path: Path, name: str | None = None) -> Any:
    """POST ``path`` as the page does (an AsyncClient's answer is to be awaited)."""
    url = f"/api/upload?name={name or path.name}"
    return client.post(url, content=path.read_bytes(), headers=VIDEO)


def stored_files(client: TestClient) -> list[str]:
    """The uploads folder's clip files (not its lock file)."""
    folder = client.app.state.store.folder
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)


@pytest.fixture()
def client(tiny_assistant, synthetic_clip_path: Path) -> Iterator[TestClient]:
    app = create_app(tiny_assistant, max_upload_bytes=5 * MB, examples=[synthetic_clip_path])
    with local_client(app) as client:
        yield client


@pytest.fixture()
def pair(client: TestClient, synthetic_clip_path: Path, candidate_clip_path: Path) -> dict:
    reference = upload(client, synthetic_clip_path).json()
    candidate = upload(client, candidate_clip_path).json()
    return {"reference": {"id": reference["id"]}, "candidate": {"id": candidate["id"]}}


def test_page_and_assets_load_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC_DIR.iterdir():  # no CDN, no web fonts: the page must work offline
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
    assert client.get("/api/health").json() == {"status": "ok"}


def test_info_lists_examples_without_paths(client: TestClient, synthetic_clip_path) -> None:
    info = client.get("/api/info").json()
    assert info["max_upload_bytes"] == 5 * MB and info["categories"] == list(CATEGORIES)
    [example] = info["examples"]
    assert example["name"] == "synthetic.mp4" and example["duration"] == pytest.approx(4.0)
    assert str(synthetic_clip_path.parent) not in str(info)


def test_upload_stores_a_complete_file_under_a_unique_name(
    client: TestClient, synthetic_clip_path: Path
) -> None:
    first = upload(client, synthetic_clip_path, "my step.mp4")
    second = upload(client, synthetic_clip_path, "my step.mp4")
    assert first.status_code == 200, first.text
    clip = first.json()
    assert clip["name"] == "my step.mp4" and clip["duration"] == pytest.approx(4.0)
    assert (clip["width"], clip["height"]) == (128, 128)
    assert clip["id"] != second.json()["id"]
    # Final names only (no partial files), made from the ids, not from the user's name.
    assert stored_files(client) == sorted([f"{clip['id']}.mp4", f"{second.json()['id']}.mp4"])


def test_shutting_down_removes_the_uploads(tiny_assistant, synthetic_clip_path: Path) -> None:
    app = create_app(tiny_assistant, max_upload_bytes=5 * MB)
    with local_client(app) as client:
        assert upload(client, synthetic_clip_path).status_code == 200
        folder = app.state.store.folder
        assert len(stored_files(client)) == 1
    assert not folder.exists()


def test_upload_rejects_a_file_that_does_not_decode(client: TestClient, not_a_video: Path) -> None:
    response = upload(client, not_a_video)
    assert response.status_code == 422
    message = response.json()["error"]
    assert message.startswith("notes.mp4 is not a video this server can read")
    assert "\n" not in message and str(client.app.state.store.folder) not in message
    empty = client.post("/api/upload?name=empty.mp4", content=b"", headers=VIDEO)
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    assert stored_files(client) == []


def test_upload_size_limit(tiny_assistant, synthetic_clip_path: Path) -> None:
    size = synthetic_clip_path.stat().st_size
    app = create_app(tiny_assistant, max_upload_bytes=size - 1)
    with local_client(app) as client:
        declared = upload(client, synthetic_clip_path, "big.mp4")
        assert declared.status_code == 413
        assert declared.json()["error"] == (
            f"big.mp4 is larger than the upload limit of {(size - 1) / MB:g} MB"
        )
        # Without a Content-Length the limit holds while streaming.
        data = synthetic_clip_path.read_bytes()
        chunks = (data[i : i + 4096] for i in range(0, len(data), 4096))
        streamed = client.post("/api/upload?name=big.mp4", content=chunks, headers=VIDEO)
        assert streamed.status_code == 413 and "upload limit" in streamed.json()["error"]
        assert stored_files(client) == []


def test_upload_refuses_frames_above_the_pixel_limit(
    client: TestClient, synthetic_clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepdiff.video import decode

    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 128 * 128 - 1)  # the clip is 128x128
    response = upload(client, synthetic_clip_path, "huge.mp4")
    assert response.status_code == 413
    assert response.json()["error"] == (
        "huge.mp4: frames of 128x128 (0.0164 MP) exceed the limit of 0.0164 MP "
        "(16383 pixels) per frame"
    )
    assert stored_files(client) == []
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 128 * 128)
    assert upload(client, synthetic_clip_path).status_code == 200


def test_report_json(client: TestClient, pair: dict) -> None:
    response = client.post("/api/report", json=pair)
    assert response.status_code == 200, response.text
    data = response.json()
    report = data["report"]
    assert [c["category"] for c in report["categories"]] == list(CATEGORIES)
    num_frames = len(report["reference_times"])
    for side in ("reference", "candidate"):
        frames = data[side]["frames"]
        assert [f["time"] for f in frames] == pytest.approx(report[f"{side}_times"], abs=1e-3)
        image = client.get(frames[0]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:2] == b"\xff\xd8"
    for category in report["categories"]:
        assert 1 <= category["severity"] <= 5 and 0 <= category["p_same"] <= 1
        assert category["moments"]
        for moment in category["moments"]:
            assert 0 <= moment["reference_frame"] < num_frames
            assert 0 <= moment["candidate_frame"] < len(report["candidate_times"])
    # Clips are named as the user named them; server paths never reach the page.
    assert report["reference"] == "synthetic.mp4"
    assert str(client.app.state.store.folder) not in response.text


def test_report_on_a_segment_and_one_category(client: TestClient, pair: dict) -> None:
    pair["candidate"].update(start=0.5, end=2.5)
    pair["categories"] = ["Tools/Equipment"]
    response = client.post("/api/report", json=pair)
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["candidate"]["start"], data["candidate"]["end"]) == (0.5, 2.5)
    assert all(0.5 <= t <= 2.5 for t in data["report"]["candidate_times"])
    assert [c["category"] for c in data["report"]["categories"]] == ["Tools/Equipment"]
    assert data["report"]["candidate"] == "web_candidate.mp4@0.5-2.5"


@pytest.mark.parametrize(
    ("segment", "status", "message"),
    [
        (
            {"start": 10, "end": 12},
            422,
            "candidate (web_candidate.mp4): segment 10-12 s lies outside the 3.00 s clip",
        ),
        ({"start": 2, "end": 1}, 422, "needs 0 <= start < end"),
        ({"start": "soon"}, 422, "candidate.start: Input should be a valid number"),
        ({"id": "u0123"}, 404, "unknown clip 'u0123'"),
    ],
)
def test_bad_clip_requests_get_one_readable_line(
    client: TestClient, pair: dict, segment: dict, status: int, message: str
) -> None:
    pair["candidate"].update(segment)
    response = client.post("/api/report", json=pair)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unknown_category_is_a_readable_error(client: TestClient, pair: dict) -> None:
    pair["categories"] = ["Colour"]
    response = client.post("/api/report", json=pair)
    assert response.status_code == 422
    assert "unknown category 'Colour'" in response.json()["error"]


def test_rank_json(client: TestClient, pair: dict, synthetic_clip_path: Path) -> None:
    example = client.get("/api/info").json()["examples"][0]
    body = {
        "reference": pair["reference"],
        "candidates": [pair["candidate"], {"id": example["id"]}],
    }
    response = client.post("/api/rank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["names"] == ["web_candidate.mp4", "synthetic.mp4"]
    rank = data["rank"]
    assert sorted(rank["overall"]) == [0, 1]
    assert set(rank["per_category"]) == set(CATEGORIES)
    assert all(sorted(order) == [0, 1] for order in rank["per_category"].values())
    assert [c["candidate"] for c in rank["candidates"]] == data["names"]


def test_ask(client: TestClient, pair: dict) -> None:
    body = {**pair, "question": "  what did I do   wrong compared to the reference? "}
    response = client.post("/api/ask", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["question"] == "what did I do wrong compared to the reference?"
    assert isinstance(data["answer"], str)
    blank = client.post("/api/ask", json={**pair, "question": "   "})
    assert blank.status_code == 422 and blank.json()["error"] == "the question is empty"


def test_model_work_does_not_block_the_server(
    fake_assistant, synthetic_clip_path: Path, candidate_clip_path: Path
) -> None:
    """While a slow model call runs, the page, static files, health, uploads and
    thumbnails answer at once; model calls never overlap."""
    assistant = fake_assistant(delay=20.0)
    app = create_app(assistant, max_upload_bytes=5 * MB)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            ids = []
            for path in (synthetic_clip_path, candidate_clip_path):
                response = await upload(client, path)
                ids.append(response.json()["id"])
            pair = {"reference": {"id": ids[0]}, "candidate": {"id": ids[1]}}
            slow = asyncio.ensure_future(client.post("/api/report", json=pair))
            queued = asyncio.ensure_future(client.post("/api/ask", json={**pair, "question": "q?"}))
            await asyncio.to_thread(assistant.started.wait, 10)
            quick = [
                client.get("/"),
                client.get("/static/app.js"),
                client.get("/api/health"),
                upload(client, candidate_clip_path, "c.mp4"),
            ]
            for response in await asyncio.wait_for(asyncio.gather(*quick), timeout=10):
                assert response.status_code == 200
            assert not slow.done() and not queued.done()
            assistant.release.set()
            report, answer = await asyncio.wait_for(asyncio.gather(slow, queued), timeout=30)
            assert report.status_code == 200 and answer.status_code == 200
            thumb = await client.get(report.json()["reference"]["frames"][0]["url"])
            assert thumb.status_code == 200
        assert assistant.max_active == 1

    try:
        asyncio.run(scenario())
    finally:
        assistant.release.set()
        app.state.runner.close()
        app.state.store.close()


def test_serve_command_builds_the_app_and_runs_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthetic_clip_path: Path
) -> None:
    import uvicorn

    from stepdiff.cli import app

    (tmp_path / "step.mp4").write_bytes(synthetic_clip_path.read_bytes())
    (tmp_path / "readme.txt").write_text("not offered")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    result = CliRunner().invoke(
        app,
        ["serve", "--config", "tiny", "--no-demo", "--examples", str(tmp_path), "--port", "8123"],
    )
    assert result.exit_code == 0, result.output
    [(web_app, options)] = calls
    assert options == {"host": "127.0.0.1", "port": 8123, "log_level": "warning"}
    assert [c.name for c in web_app.state.store.examples()] == ["step.mp4"]
    web_app.state.store.close()
    bad = CliRunner().invoke(app, ["serve", "--no-demo", "--examples", str(tmp_path / "nope")])
    assert bad.exit_code == 1 and "not a folder" in bad.output


def test_serve_with_llamacpp_needs_a_gguf_llm() -> None:
    from stepdiff.cli import app

    result = CliRunner().invoke(app, ["serve", "--config", "tiny", "--no-demo", "--llamacpp"])
    assert result.exit_code == 1
    assert "need a GGUF LLM" in result.output
