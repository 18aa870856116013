"""Requests another site may have sent (CSRF, DNS rebinding) are refused before any route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from stepdiff.web import create_app
from stepdiff.web.folders import LOCK_NAME
from stepdiff.web.guard import is_loopback
from stepdiff.web.server import serve_in_thread

BASE_URL = "http://127.0.0.1:7860"
MB = 2**20


@pytest.fixture()
def client(fake_assistant) -> Iterator[TestClient]:
    app = create_app(fake_assistant(), max_upload_bytes=5 * MB)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def upload(client: TestClient, path: Path, **headers: str) -> httpx.Response:
    return client.post(f"/api/upload?name={path.name}", content=path.read_bytes(), headers=headers)


def clip_files(client: TestClient) -> list[Path]:
    return [p for p in client.app.state.store.folder.iterdir() if p.name != LOCK_NAME]


@pytest.mark.parametrize("host", ["localhost:7860", "127.0.0.1:7860", "[::1]:7860"])
def test_loopback_names_at_the_servers_port_are_served(client: TestClient, host: str) -> None:
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example:7860", "evil.example", "localhost:7861", "127.0.0.1", "localhost:x"]
)
def test_other_hosts_are_refused_as_dns_rebinding(client: TestClient, host: str) -> None:
    for response in (
        client.get("/", headers={"Host": host}),
        client.get("/api/info", headers={"Host": host}),
    ):
        assert response.status_code == 403
        message = response.json()["error"]
        assert "is not this server" in message or "malformed Host" in message


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost:7861", "null"])
def test_cross_origin_posts_are_refused(
    client: TestClient, synthetic_clip_path: Path, origin: str
) -> None:
    response = upload(
        client, synthetic_clip_path, **{"Content-Type": "video/mp4", "Origin": origin}
    )
    assert response.status_code == 403
    assert response.json() == {"error": f"cross-origin request from {origin!r} refused"}
    report = client.post(
        "/api/report",
        json={"reference": {"id": "e1"}, "candidate": {"id": "e1"}},
        headers={"Origin": origin},
    )
    assert report.status_code == 403
    assert clip_files(client) == []


def test_same_origin_posts_are_served(client: TestClient, synthetic_clip_path: Path) -> None:
    headers = {"Content-Type": "video/mp4", "Origin": BASE_URL}
    assert upload(client, synthetic_clip_path, **headers).status_code == 200
    assert len(clip_files(client)) == 1


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],  # fmt: skip
)
def test_upload_needs_a_video_or_octet_stream_body(
    client: TestClient, synthetic_clip_path: Path, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = upload(client, synthetic_clip_path, **headers)
    assert response.status_code == 415
    assert response.json()["error"].startswith(
        "/api/upload needs Content-Type application/octet-stream or video/*, got "
    )
    assert clip_files(client) == []


@pytest.mark.parametrize("content_type", ["application/octet-stream", "video/webm"])
def test_upload_takes_video_and_octet_stream_bodies(
    client: TestClient, synthetic_clip_path: Path, content_type: str
) -> None:
    assert upload(client, synthetic_clip_path, **{"Content-Type": content_type}).status_code == 200


def test_json_routes_refuse_text_plain(client: TestClient) -> None:
    body = '{"reference": {"id": "e1"}, "candidate": {"id": "e1"}, "question": "q"}'
    response = client.post("/api/ask", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "needs Content-Type application/json" in response.json()["error"]


def test_an_exposed_app_serves_any_host_but_still_refuses_other_origins(
    fake_assistant, synthetic_clip_path: Path
) -> None:
    app = create_app(fake_assistant(), host="0.0.0.0")
    with TestClient(app, base_url="http://192.168.1.20:7860") as client:
        assert client.get("/api/health").status_code == 200
        video = {"Content-Type": "video/mp4"}
        assert upload(client, synthetic_clip_path, **video).status_code == 200
        foreign = upload(client, synthetic_clip_path, Origin="http://evil.example", **video)
        assert foreign.status_code == 403


def test_a_real_server_checks_the_port_it_listens_on(fake_assistant) -> None:
    app = create_app(fake_assistant())
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        assert httpx.get(f"{url}/api/health").status_code == 200
        named = httpx.get(f"{url}/api/health", headers={"Host": f"localhost:{port}"})
        assert named.status_code == 200
        rebound = httpx.get(f"{url}/api/health", headers={"Host": f"evil.example:{port}"})
        assert rebound.status_code == 403
        other_port = httpx.get(f"{url}/api/health", headers={"Host": f"localhost:{port + 1}"})
        assert other_port.status_code == 403


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("localhost.evil.example", False),
    ],  # fmt: skip
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
