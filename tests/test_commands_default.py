"""Every user-facing command, with default options, on the shipped model.

A projector change once made the shipped severity calibration refuse the shipped
projector, so `report` and `serve` failed at start-up while every test passed: these
tests run each command as a user would, with nothing but the clips (and a free port).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from stepdiff.assistant.calibration import SeverityCalibration
from stepdiff.assistant.fingerprint import projector_fingerprint
from stepdiff.cli import app
from stepdiff.data.categories import CATEGORIES
from stepdiff.demo import DEMO_QUESTIONS, make_demo_clips
from stepdiff.model.build import load_model_from
from stepdiff.model_files import packaged_model_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory) -> tuple[Path, Path]:
    reference, candidate = make_demo_clips(tmp_path_factory.mktemp("demo"))
    return reference.path, candidate.path


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.stderr)
    return result


def test_the_shipped_calibration_belongs_to_the_shipped_projector():
    folder = packaged_model_dir()
    assert folder is not None
    calibration = SeverityCalibration.load(folder / "severity_calibration.json")
    assert calibration.fingerprint == projector_fingerprint(load_model_from())


def test_ask(demo_clips):
    reference, candidate = demo_clips
    result = run("ask", str(reference), str(candidate), "-q", DEMO_QUESTIONS[0], "--json")
    reply = json.loads(result.stdout)
    assert reply["projector_trained"] is True
    [answer] = reply["answers"]
    assert answer["question"] == DEMO_QUESTIONS[0] and len(answer["answer"].split()) >= 2


def test_report(demo_clips):
    reference, candidate = demo_clips
    result = run("report", str(reference), str(candidate), "--json")
    report = json.loads(result.stdout)
    assert report["calibrated"] is True
    rows = report["categories"]
    assert [row["category"] for row in rows] == list(CATEGORIES)
    assert all(1 <= row["severity"] <= 5 and 0.0 < row["p_same"] < 1.0 for row in rows)
    assert all(row["caption"] for row in rows)


def test_rank(demo_clips):
    reference, candidate = demo_clips
    result = run("rank", str(reference), str(candidate), str(reference), "--json")
    ranking = json.loads(result.stdout)
    assert sorted(ranking["overall"]) == [0, 1]
    # The reference itself is at least as close to the reference as the other clip.
    p_same = [candidate["overall"] for candidate in ranking["candidates"]]
    assert all(0.0 < p < 1.0 for p in p_same)


def test_the_demo_answers_are_right_for_its_clips(tmp_path):
    """A wooden spoon stirring peppers in a pan, against a whisk beating dressing in a pot."""
    result = run("demo", "--out", str(tmp_path))
    answers = [line[3:].lower() for line in result.stdout.splitlines() if line.startswith("A: ")]
    assert len(answers) == len(DEMO_QUESTIONS)
    tools, wrong, same_technique = answers
    assert "whisk" in tools and "spoon" in tools, tools
    # A real difference between the clips, not "nothing" or a value neither clip shows.
    real = ("whisk", "spoon", "pot", "pan", "dressing", "pepper", "stir", "back and forth")
    assert any(word in wrong for word in real), wrong
    assert "nothing" not in wrong and "not do anything" not in wrong, wrong
    # The shipped model says NO to every pair, a clip against itself too (docs/results.md):
    # this catches a YES, not a model that reads technique.
    assert same_technique.startswith("no"), same_technique


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_a_report_request():
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stepdiff.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"stepdiff serve exited {server.returncode}: {server.stdout.read()}")
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "stepdiff serve did not start"
            time.sleep(0.5)
        examples = httpx.get(f"{base}/api/info", timeout=10).json()["examples"]
        assert len(examples) >= 2
        body = {
            "reference": {"id": examples[0]["id"]},
            "candidate": {"id": examples[1]["id"]},
            "categories": ["Technique"],
        }
        response = httpx.post(f"{base}/api/report", json=body, timeout=240)
        assert response.status_code == 200, response.text
        rows = response.json()["report"]["categories"]
        assert [row["category"] for row in rows] == ["Technique"]
    finally:
        server.terminate()
        server.wait(timeout=30)
