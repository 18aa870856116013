"""``stepdiff serve`` flags: bad values fail in one line before the model loads, exposing
the app needs --expose, and no error path leaves an uploads folder behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from stepdiff.cli import app as cli_app
from stepdiff.web.folders import uploads_root


@pytest.fixture()
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """uvicorn.run replaced by a recorder: no test here listens on a port."""
    import uvicorn

    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


@pytest.fixture()
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test: the flags must be refused before it."""
    from stepdiff.assistant import Assistant

    def refuse(*_, **__):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Assistant, "load", refuse)


def serve(*flags: str) -> Result:
    return CliRunner().invoke(cli_app, ["serve", "--config", "tiny", "--no-demo", *flags])


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"error: {message}"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "99999"], "--port must be between 1 and 65535, got 99999"),
        (["--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["--port", "-1"], "--port must be between 1 and 65535, got -1"),
        (["--max-upload-mb", "nan"], "--max-upload-mb must be a positive number of MB, got nan"),
        (["--max-upload-mb", "inf"], "--max-upload-mb must be a positive number of MB, got inf"),
        (["--max-upload-mb", "-5"], "--max-upload-mb must be a positive number of MB, got -5"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be a positive number of MB, got 0"),
        (["--max-upload-mb", "1e-9"], "--max-upload-mb 1e-09 is less than one byte"),
        (["--max-uploads", "0"], "--max-uploads must be at least 1, got 0"),
        (["--max-total-mb", "nan"], "--max-total-mb must be a positive number of MB, got nan"),
        (
            ["--max-total-mb", "100"],
            "--max-total-mb 100 is smaller than one upload (--max-upload-mb)",
        ),
        (
            ["--upload-ttl-minutes", "-1"],
            "--upload-ttl-minutes must be a positive number, got -1",
        ),
    ],
)
def test_bad_flags_are_one_line_errors_before_the_model_loads(
    uvicorn_calls: list, no_model_load: None, flags: list[str], message: str
) -> None:
    assert_one_line_error(serve(*flags), message)
    assert uvicorn_calls == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_a_host_other_machines_reach_needs_expose(
    uvicorn_calls: list, no_model_load: None, host: str
) -> None:
    assert_one_line_error(
        serve("--host", host),
        f"--host {host} lets other machines reach the app (anyone who can reach the port "
        "can upload videos and run the model); add --expose to mean it",
    )
    assert uvicorn_calls == []


def test_expose_serves_to_the_network_and_says_what_is_exposed(uvicorn_calls: list) -> None:
    result = serve("--host", "0.0.0.0", "--expose", "--port", "8123", "--max-uploads", "5")
    assert result.exit_code == 0, result.output
    assert (
        "Exposed on 0.0.0.0, port 8123: anyone who can reach it can upload videos (each up to "
        "200 MB; 5 kept, 2048 MB in all) and run the model on this machine. There is no login."
    ) in result.output
    [(web_app, options)] = uvicorn_calls
    assert options["host"] == "0.0.0.0"
    with TestClient(web_app, base_url="http://192.168.1.20:8123") as client:
        assert client.get("/api/health").status_code == 200  # any name reaches it


def test_loopback_hosts_need_no_expose(uvicorn_calls: list) -> None:
    result = serve("--host", "localhost")
    assert result.exit_code == 0, result.output
    assert "Exposed" not in result.output
    [(web_app, _)] = uvicorn_calls
    web_app.state.store.close()


def test_a_bad_example_leaves_no_uploads_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, not_a_video: Path, uvicorn_calls: list
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "notes.mp4").write_bytes(not_a_video.read_bytes())
    result = serve("--examples", str(examples))
    assert result.exit_code == 1
    assert result.output.startswith("error: notes.mp4 is not a video this server can read")
    assert uvicorn_calls == []
    assert list(temp.iterdir()) == []
    assert not uploads_root().exists() or list(uploads_root().iterdir()) == []


def test_a_server_that_fails_to_start_deletes_its_uploads_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    def port_in_use(app, **_) -> None:
        assert app.state.store.folder.is_dir()
        raise SystemExit(1)  # what uvicorn does when it cannot bind, before the lifespan

    monkeypatch.setattr(uvicorn, "run", port_in_use)
    result = serve()
    assert result.exit_code == 1
    assert list(uploads_root().iterdir()) == []
