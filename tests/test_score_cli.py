"""`stepdiff score`: tables, JSON, report files, and one-line errors with exit status 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLIPS = ["vidA_0_5", "vid_B_1.5_6", "vidC_2_7", "vidD_3_8"]


def run(*args: str):
    return CliRunner().invoke(app, ["score", *args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def diffrank_files(tmp_path) -> tuple[Path, Path]:
    """Three rows in two categories; hand-computed taus 1.0, 4/6 and 5/sqrt(30)."""
    gt = [
        {"reference": CLIPS[0], "targets": CLIPS, "category": "Visuals", "scores": [0, 1, 2, 3]},
        {"reference": CLIPS[0], "targets": CLIPS, "category": "Visuals", "scores": [1, 2, 3, 4]},
        {
            "reference": CLIPS[1],
            "targets": CLIPS,
            "category": "Ingredients",
            "scores": [0, 0, 3, 2],
        },
    ]
    preds = [
        {"scores": [1, 2, 3, 4]},
        {"scores": [1, 2, 4, 3]},
        {"scores": [0.1, 0.2, 0.4, 0.3]},
    ]
    return write_jsonl(tmp_path / "gt.jsonl", gt), write_jsonl(tmp_path / "preds.jsonl", preds)


EXPECTED_TAU = (1 + 4 / 6 + 5 / math.sqrt(30)) / 3


def test_score_prints_the_table_and_writes_the_reports(diffrank_files, tmp_path):
    gt, preds = diffrank_files
    out = tmp_path / "report"
    result = run("--task", "diffrank", "--gt", str(gt), "--pred", str(preds), "--out", str(out))
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert table.startswith("## StepDiff DiffRank: 3 items")
    metric_rows = [line for line in table.splitlines() if line.startswith("| Kendall")]
    assert "official (`ktau`)" in metric_rows[0]  # official numbers come first
    assert f"| {EXPECTED_TAU:.4f} |" in metric_rows[0]
    assert "| Ingredients | 1 |" in table and "| Visuals | 2 |" in table

    assert sorted(p.name for p in out.iterdir()) == ["per_category.png", "report.json", "report.md"]
    assert (out / "report.md").read_text() == table
    report = json.loads((out / "report.json").read_text())
    assert report["official"]["ktau"] == pytest.approx(EXPECTED_TAU, abs=1e-12)
    assert report["task"] == "diffrank" and report["predictions"] == str(preds)
    assert report["bootstrap"]["resamples"] == 1000 and report["bootstrap"]["seed"] == 0
    visuals = next(c for c in report["per_category"] if c["category"] == "Visuals")
    assert visuals["metrics"][0]["value"] == pytest.approx((1 + 4 / 6) / 2)
    png = (out / "per_category.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    assert "report.json" in result.stderr


def test_json_output_is_strict_json_with_null_for_a_nan_official_mean(tmp_path):
    gt = [
        {"reference": CLIPS[0], "targets": CLIPS, "category": "Actions", "scores": [0, 1, 2, 3]},
        {"reference": CLIPS[0], "targets": CLIPS, "category": "Actions", "scores": [3, 1, 2, 0]},
    ]
    preds = [{"scores": [1, 2, 3, 4]}, {"scores": [0.5, 0.5, 0.5, 0.5]}]  # 2nd: constant
    result = run(
        "--task",
        "DiffRank",  # case-insensitive
        "--gt",
        str(write_jsonl(tmp_path / "gt.jsonl", gt)),
        "--pred",
        str(write_jsonl(tmp_path / "preds.jsonl", preds)),
        "--json",
        "--bootstrap",
        "20",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert report["official"] == {"ktau": None}
    assert report["counts"] == {"nan_rows": 1}
    safe = next(m for m in report["metrics"] if m["name"] == "Kendall tau-b (NaN-safe)")
    assert safe["value"] == 1.0 and not safe["official"]


def test_diffmcq_accuracy_by_hand_through_the_cli(tmp_path):
    options = [[CLIPS[i], CLIPS[(i + 1) % 4]] for i in range(4)]
    gt = [
        {"difference": "d", "category": "Technique", "options": options, "answer": options[g]}
        for g in (1, 1, 3)
    ]
    preds = [{"scores": [0.1, 0.9, 0, 0]}, {"scores": [0.5, 0.5, 0, 0]}, {"scores": [0, 0, 0, 1]}]
    result = run(
        "--task",
        "diffmcq",
        "--gt",
        str(write_jsonl(tmp_path / "gt.jsonl", gt)),
        "--pred",
        str(write_jsonl(tmp_path / "preds.jsonl", preds)),
        "--bootstrap",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert "| accuracy | 0.6667 | – | official (`accuracy`) |" in result.stdout
    assert "bootstrap disabled" in result.stdout


def test_diffcap_through_the_cli_gives_the_hand_computed_bleu1(tmp_path):
    gt = [
        {"reference": CLIPS[0], "candidate": CLIPS[1], "category": "Ingredients", "text": refs}
        for refs in (["the cat sat on mat"], ["the cat sat on mat", "the cat"])
    ]
    preds = [{"generated_text": "the the cat"}, {"generated_text": "the the cat"}]
    out = tmp_path / "out"
    result = run(
        "--task",
        "diffcap",
        "--gt",
        str(write_jsonl(tmp_path / "gt.jsonl", gt)),
        "--pred",
        str(write_jsonl(tmp_path / "preds.jsonl", preds)),
        "--out",
        str(out),
        "--bootstrap",
        "50",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["official"]["BLEU"] == pytest.approx(4 / 6 * math.exp(1 - 7 / 6), rel=1e-8)
    assert set(report["official"]) == {"BLEU", "CIDEr", "ROUGE-L"}
    assert [m["name"] for m in report["metrics"]] == ["BLEU-1", "CIDEr-D", "ROUGE-L", "BLEU-4"]
    assert "per-item" in result.stdout  # the table says how its intervals were made
    assert (out / "per_category.png").read_bytes().startswith(PNG_SIGNATURE)


def test_against_prints_paired_differences_and_saves_them(diffrank_files, tmp_path):
    gt, preds = diffrank_files
    reversed_rows = [{"scores": [4, 3, 2, 1]}, {"scores": [4, 3, 1, 2]}, {"scores": [4, 3, 1, 2]}]
    other = write_jsonl(tmp_path / "other.jsonl", reversed_rows)
    out = tmp_path / "report"
    result = run(
        "--task", "diffrank", "--gt", str(gt), "--pred", str(preds), "--against", str(other),
        "--out", str(out), "--bootstrap", "20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Reversing a ranking negates its tau: the difference is twice the expected tau.
    assert f"### Minus `{other}`" in result.stdout
    assert f"| Kendall tau-b | {2 * EXPECTED_TAU:.4f} |" in result.stdout
    saved = json.loads((out / "report.json").read_text())["paired"]
    assert {row["against"] for row in saved} == {str(other)}
    tau = next(row for row in saved if row["name"] == "Kendall tau-b")
    assert tau["difference"] == pytest.approx(2 * EXPECTED_TAU)
    assert tau["share_of_resamples_not_better"] == 0.0


def test_against_a_file_of_the_wrong_length_is_a_one_line_error(diffrank_files, tmp_path):
    gt, preds = diffrank_files
    short = write_jsonl(tmp_path / "short.jsonl", [{"scores": [1, 2, 3, 4]}])
    result = run(
        "--task", "diffrank", "--gt", str(gt), "--pred", str(preds), "--against", str(short)
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {short}: 1 line but the ground truth has 3"


@pytest.mark.parametrize(
    ("break_files", "expected"),
    [
        (
            lambda gt, preds: preds.write_text(preds.read_text().split("\n", 1)[1]),
            "preds.jsonl: 2 lines but the ground truth has 3",
        ),
        (
            lambda gt, preds: gt.write_text(gt.read_text().replace('"Visuals"', '"Taste"', 1)),
            "gt.jsonl:1: field 'category': unknown category 'Taste'",
        ),
        (
            lambda gt, preds: preds.write_text(
                preds.read_text().replace("[1, 2, 4, 3]", "[1, NaN, 4, 3]")
            ),
            "preds.jsonl:2: field 'scores[1]': NaN is not a finite number",
        ),
        (lambda gt, preds: gt.unlink(), "gt.jsonl: no such file"),
    ],
    ids=["short-predictions", "unknown-category", "nan-score", "missing-gt"],
)
def test_bad_input_exits_1_with_one_error_line(diffrank_files, tmp_path, break_files, expected):
    gt, preds = diffrank_files
    break_files(gt, preds)
    out = tmp_path / "not-written"
    result = run("--task", "diffrank", "--gt", str(gt), "--pred", str(preds), "--out", str(out))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert result.stdout == "" and not out.exists()


def test_unwritable_out_dir_is_a_one_line_error(diffrank_files, tmp_path):
    gt, preds = diffrank_files
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("--task", "diffrank", "--gt", str(gt), "--pred", str(preds), "--out", str(blocker))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {blocker}: cannot write the report")


def test_usage_errors_exit_2(diffrank_files):
    # A negative --bootstrap is a one-line error with exit 1 (tests/test_input_errors.py).
    gt, preds = diffrank_files
    assert run("--task", "diffsum", "--gt", str(gt), "--pred", str(preds)).exit_code == 2


def test_score_is_listed_in_the_main_help():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "score" in result.stdout
