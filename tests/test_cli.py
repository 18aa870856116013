"""`stepdiff ask` on tiny models and generated clips: output, JSON, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.config import load_config
from stepdiff.model import build_model
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

TINY = ["--config", "tiny", "--no-cache"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    ref = write_synthetic_clip(folder / "ref.mp4", SceneSpec(tool="spoon"), seconds=2.0, size=64)
    cand = write_synthetic_clip(
        folder / "cand.mp4", SceneSpec(tool="whisk", vessel="pot"), seconds=2.0, size=64
    )
    return ref, cand


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_ask_answers_each_question_as_json(clips):
    ref, cand = clips
    result = run(
        "ask",
        str(ref),
        f"{cand}@0.5-1.5",
        "-q",
        "What differs?",
        "-q",
        "Am I done?",
        "--json",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [a["question"] for a in payload["answers"]] == ["What differs?", "Am I done?"]
    assert payload["candidate"] == f"{cand}@0.5-1.5"
    assert payload["projector_trained"] is False
    assert payload["model"] == {"encoder": "tiny", "llm": "tiny"}
    # The CLI's answers are the library's answers for the same clips.
    from stepdiff.video.clip import resolve_clip

    model = build_model(load_config("tiny"))
    expected = model.ask(
        resolve_clip(str(ref)), resolve_clip(f"{cand}@0.5-1.5"), ["What differs?", "Am I done?"]
    )
    assert [a["answer"] for a in payload["answers"]] == expected


def test_ask_plain_output_and_untrained_note(clips):
    ref, cand = clips
    result = run("ask", str(ref), str(cand), "-q", "What differs?", *TINY)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Q: What differs?\nA: ")
    assert "projector is untrained" in result.stderr


def test_ask_with_a_saved_checkpoint(clips, tmp_path):
    ref, cand = clips
    build_model(load_config("tiny")).save_pretrained(tmp_path / "ckpt")
    result = run(
        "ask",
        str(ref),
        str(cand),
        "-q",
        "Q?",
        "--model",
        str(tmp_path / "ckpt"),
        "--json",
        "--no-cache",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["projector_trained"] is True


def test_clip_ids_resolve_in_a_video_folder(clips, tmp_path):
    ref, cand = clips
    (tmp_path / "my_video_1.mp4").write_bytes(ref.read_bytes())
    result = run(
        "ask",
        "my_video_1_0.0_1.5",
        str(cand),
        "--video-dir",
        str(tmp_path),
        "-q",
        "Q?",
        "--json",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference"] == f"{tmp_path / 'my_video_1.mp4'}@0-1.5"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda ref, cand, tmp: ["missing.mp4", str(cand)], "missing.mp4"),
        (lambda ref, cand, tmp: [f"{ref}@1-9", str(cand)], "segment"),
        (lambda ref, cand, tmp: [f"{ref}@a-b", str(cand)], "START-END"),
        (lambda ref, cand, tmp: [str(tmp / "empty.mp4"), str(cand)], "empty.mp4"),
        (lambda ref, cand, tmp: [str(tmp / "corrupt.mp4"), str(cand)], "corrupt.mp4"),
        (lambda ref, cand, tmp: ["nouid_1_2", str(cand), "--video-dir", str(tmp)], "nouid"),
        (
            lambda ref, cand, tmp: [str(ref), str(cand), "--set", "nm_frames=2"],
            "unknown key 'nm_frames'",
        ),
        (
            lambda ref, cand, tmp: [str(ref), str(cand), "--model", str(tmp)],
            "give either a config or a checkpoint",
        ),
    ],
)
def test_bad_input_gives_one_line_and_status_1(clips, tmp_path, make_args, message):
    ref, cand = clips
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(bytes(range(256)) * 40)
    result = run("ask", *make_args(ref, cand, tmp_path), "-q", "Q?", *TINY)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("error:"), result.stderr
    assert message in error_lines[0]


def test_a_folder_that_is_not_a_checkpoint_is_refused(clips, tmp_path):
    ref, cand = clips
    result = run("ask", str(ref), str(cand), "-q", "Q?", "--model", str(tmp_path), "--no-cache")
    assert result.exit_code == 1
    assert "not a StepDiff checkpoint" in result.stderr


def test_reading_configs_does_not_import_transformers() -> None:
    # The CLI reads configs and model folders before it needs an LLM; importing
    # transformers costs seconds, so these modules must not pull it in.
    import subprocess
    import sys

    code = (
        "import sys, stepdiff.cli, stepdiff.config, stepdiff.model_files; "
        "print(sorted(m for m in ('transformers', 'stepdiff.llm.loading') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _one_error_line(result) -> str:  # noqa: ANN001
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("frames", ["0", "-2"])
@pytest.mark.parametrize("command", ["ask", "report", "rank"])
def test_frames_below_one_is_refused(clips, command, frames):
    ref, cand = clips
    args = {"ask": [str(ref), str(cand), "-q", "Q?"], "report": [str(ref), str(cand)]}
    clip_args = args.get(command, [str(ref), str(cand), str(cand)])
    result = run(command, *clip_args, "--frames", frames, *TINY)
    assert _one_error_line(result) == f"error: --frames must be >= 1, got {frames}"


def test_ask_refuses_frames_above_the_pixel_limit(clips, monkeypatch):
    from stepdiff.video import decode

    ref, cand = clips  # 64x64 frames
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 64 * 64 - 1)
    result = run("ask", str(ref), str(cand), "-q", "Q?", *TINY)
    line = _one_error_line(result)
    assert f"{ref}: frames of 64x64" in line and "exceed the limit of" in line
