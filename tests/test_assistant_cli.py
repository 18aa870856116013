"""`stepdiff report`, `rank` and `calibrate` on tiny models and generated clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

TINY = ["--config", "tiny", "--no-cache"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("assistant_cli")
    ref = write_synthetic_clip(folder / "ref.mp4", SceneSpec(tool="spoon"), seconds=2.0, size=64)
    cand = write_synthetic_clip(
        folder / "cand.mp4", SceneSpec(tool="whisk", vessel="pot"), seconds=2.0, size=64
    )
    other = write_synthetic_clip(
        folder / "other.mp4", SceneSpec(food_color=(40, 160, 60)), seconds=2.0, size=64
    )
    return ref, cand, other


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0], lines[0]


def test_report_json(clips):
    ref, cand, _ = clips
    result = run(
        "report", str(ref), f"{cand}@0.5-1.5", "--category", "Visuals", "--category",
        "Tools/Equipment", "--moments", "2", "--max-new-tokens", "4", "--json", *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["candidate"] == f"{cand}@0.5-1.5"
    assert data["calibrated"] is False
    assert [c["category"] for c in data["categories"]] == ["Visuals", "Tools/Equipment"]
    for item in data["categories"]:
        assert 1 <= item["severity"] <= 5 and 0 < item["p_same"] < 1
        assert len(item["moments"]) == 2 and item["caption"]
    assert len(data["reference_times"]) == 4


def test_report_table(clips):
    ref, cand, _ = clips
    result = run("report", str(ref), str(cand), "--no-captions", "--moments", "1", *TINY)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"Reference: {ref}\nCandidate: {cand}\n")
    assert "uncalibrated" in out
    for category in ("Ingredients", "Tools/Equipment", "Technique", "Actions", "Visuals"):
        assert category in out
    assert "↔ cand" in out
    # Each category's severity bar, as the JSON report of the same pair has it.
    data = json.loads(run("report", str(ref), str(cand), "--no-captions", "--json", *TINY).stdout)
    for item in data["categories"]:
        bar = "■" * item["severity"] + "□" * (5 - item["severity"])
        assert f"{bar} {item['severity']}" in out
    assert "projector is untrained" in result.stderr
    assert "no severity calibration" in result.stderr


def test_calibrate_then_report_with_it(small_synthkitchen, clips, tmp_path):
    ref, cand, _ = clips
    out = tmp_path / "cal.json"
    result = run(
        "calibrate", "--data", str(small_synthkitchen), "--split", "test", "--out", str(out),
        "--batch-size", "16", *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = (small_synthkitchen / "diffrank_test.jsonl").read_text().splitlines()
    assert data["rows"] == len(rows) and data["points"] == 4 * len(rows)
    assert data["split"] == "test" and data["model"] == "tiny"
    assert len(data["map"]["p_same"]) == len(data["map"]["similarity"]) >= 1
    assert result.stdout.startswith("severity ")
    assert not list(tmp_path.glob(".*.tmp"))

    reported = run(
        "report", str(ref), str(cand), "--no-captions", "--calibration", str(out), "--json", *TINY
    )
    assert reported.exit_code == 0, reported.output
    assert json.loads(reported.stdout)["calibrated"] is True
    # Another projector (another init seed): the calibration does not fit it.
    mismatch = run(
        "report", str(ref), str(cand), "--calibration", str(out), "--set", "seed=1", *TINY
    )
    one_line_error(mismatch, "run `stepdiff calibrate` for it")


def test_a_calibration_beside_the_model_is_used(clips, tmp_path):
    from stepdiff.assistant import SeverityCalibration
    from stepdiff.assistant.fingerprint import projector_fingerprint
    from stepdiff.config import load_config
    from stepdiff.model import build_model

    ref, cand, _ = clips
    model = build_model(load_config("tiny"))
    model.save_pretrained(tmp_path / "ckpt")
    SeverityCalibration((0.0, 1.0), (5.0, 5.0), fingerprint=projector_fingerprint(model)).save(
        tmp_path / "ckpt" / "severity_calibration.json"
    )
    args = ["report", str(ref), str(cand), "--no-captions", "--json", "--no-cache"]
    result = run(*args, "--model", str(tmp_path / "ckpt"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["calibrated"] is True and data["projector_trained"] is True
    assert {item["severity"] for item in data["categories"]} == {1}
    (tmp_path / "ckpt" / "severity_calibration.json").write_text("{not json")
    one_line_error(run(*args, "--model", str(tmp_path / "ckpt")), "unreadable calibration")


def test_rank(clips):
    ref, cand, other = clips
    result = run("rank", str(ref), str(cand), str(other), str(ref), "--json", *TINY)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["candidate"] for c in data["candidates"]] == [str(cand), str(other), str(ref)]
    assert sorted(data["overall"]) == [0, 1, 2]
    means = [data["candidates"][k]["overall"] for k in data["overall"]]
    assert means == sorted(means, reverse=True)
    table = run("rank", str(ref), str(cand), str(other), "--category", "Actions", *TINY)
    assert table.exit_code == 0, table.output
    assert "closest to the reference first" in table.stdout and "Actions" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda r, c, t: ["report", r, c, "--category", "Tools"], "unknown category 'Tools'"),
        (lambda r, c, t: ["report", "missing.mp4", c], "missing.mp4"),
        (lambda r, c, t: ["report", r, f"{c}@1-9"], "segment ends at 9 s"),
        (lambda r, c, t: ["report", r, str(t / "corrupt.mp4")], "corrupt.mp4"),
        (
            lambda r, c, t: ["report", r, c, "--calibration", str(t / "nope.json")],
            "calibration file not found",
        ),
        (lambda r, c, t: ["rank", r, c], "at least 2 candidate clips, got 1"),
        (lambda r, c, t: ["rank", r], "got 0"),
        (lambda r, c, t: ["rank", r, c, c, "--category", "Colour"], "'Colour'"),
        (lambda r, c, t: ["rank", r, c, "missing.mp4"], "missing.mp4"),
    ],
)
def test_bad_input_gives_one_line_and_status_1(clips, tmp_path, args, message):
    ref, cand, _ = clips
    (tmp_path / "corrupt.mp4").write_bytes(bytes(range(256)) * 40)
    one_line_error(run(*args(str(ref), str(cand), tmp_path), *TINY), message)


def test_calibrate_from_an_eval_run_fits_the_same_scale(small_synthkitchen, tmp_path):
    """The eval run's DiffRank predictions are the P(same) calibrate would compute."""
    data = str(small_synthkitchen)
    evaluated = run(
        "eval", "--task", "diffrank", "--gt", f"{data}/diffrank_test.jsonl",
        "--videos", f"{data}/videos", "--out", str(tmp_path / "run"), "--scorer", "stepdiff",
        "--bootstrap", "0", *TINY,
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    fitted = {}
    for name, extra in (("direct", []), ("from-eval", ["--from-eval", str(tmp_path / "run")])):
        out = tmp_path / f"{name}.json"
        result = run(
            "calibrate", "--data", data, "--split", "test", "--out", str(out), *extra, *TINY
        )
        assert result.exit_code == 0, result.output
        fitted[name] = json.loads(out.read_text())
    assert fitted["from-eval"] == fitted["direct"]

    # A run of another model, or on other rows, is refused in one line, naming the reason.
    other_model = run(
        "calibrate", "--data", data, "--split", "test", "--out", str(tmp_path / "x.json"),
        "--from-eval", str(tmp_path / "run"), "--set", "seed=1", *TINY,
    )  # fmt: skip
    one_line_error(other_model, "differs from this calibration in overrides")
    other_rows = run(
        "calibrate", "--data", data, "--split", "heldout", "--out", str(tmp_path / "x.json"),
        "--from-eval", str(tmp_path / "run"), *TINY,
    )  # fmt: skip
    one_line_error(other_rows, "differs from this calibration in gt")
    assert not (tmp_path / "x.json").exists()


def test_calibrate_refuses_a_folder_without_rows(tmp_path):
    result = run("calibrate", "--data", str(tmp_path), *TINY)
    one_line_error(result, "diffrank_heldout.jsonl: DiffRank file not found")
    result = run("calibrate", "--data", str(tmp_path), "--split", "train", *TINY)
    one_line_error(result, "unknown split 'train'")


def test_calibrate_writes_beside_the_model_by_default(small_synthkitchen, tmp_path):
    from stepdiff.config import load_config
    from stepdiff.model import build_model

    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    rows = (small_synthkitchen / "diffrank_heldout.jsonl").read_text().splitlines()[:2]
    (data / "diffrank_heldout.jsonl").write_text("\n".join(rows) + "\n")
    for clip_id in {
        c for row in rows for c in [json.loads(row)["reference"], *json.loads(row)["targets"]]
    }:
        uid = clip_id.rsplit("_", 2)[0]
        shutil.copy(small_synthkitchen / "videos" / f"{uid}.mp4", data / "videos" / f"{uid}.mp4")
    build_model(load_config("tiny")).save_pretrained(tmp_path / "ckpt")
    result = run("calibrate", "--data", str(data), "--model", str(tmp_path / "ckpt"), "--no-cache")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "ckpt" / "severity_calibration.json").read_text())
    assert saved["rows"] == 2 and saved["model"] == "ckpt" and saved["split"] == "heldout"
