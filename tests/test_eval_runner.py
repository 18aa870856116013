"""The evaluation runner: official prediction files from any scorer, batched and resumable."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from stepdiff.baselines.base import StepDiffScorer
from stepdiff.baselines.random import RandomScorer
from stepdiff.config import load_config
from stepdiff.data.formats import read_predictions
from stepdiff.errors import StepDiffError
from stepdiff.eval.questions import difference_question, same_question
from stepdiff.eval.runner import run_predictions
from stepdiff.model import build_model
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

UIDS = ["vid_a", "vid_b", "vid_c", "vid_d", "vid_e"]
TOOLS = ["spoon", "whisk", "spatula", "spoon", "whisk"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """Five 2 s clips and one small file per task, clip ids in the official form."""
    root = tmp_path_factory.mktemp("bench")
    (root / "videos").mkdir()
    for uid, tool in zip(UIDS, TOOLS, strict=True):
        write_synthetic_clip(
            root / "videos" / f"{uid}.mp4", SceneSpec(tool=tool), seconds=2.0, size=48
        )
    ids = [f"{uid}_0.0_1.5" for uid in UIDS]
    rank = [
        {
            "reference": ids[i],
            "targets": [ids[(i + k) % 5] for k in range(1, 5)],
            "category": "Tools/Equipment",
            "scores": [5, 3, 1, 0],
        }
        for i in range(5)
    ]
    mcq = [
        {
            "difference": "The person uses a whisk instead of a spoon.",
            "category": "Tools/Equipment",
            "options": [[ids[i], ids[(i + k) % 5]] for k in range(1, 5)],
            "answer": [ids[i], ids[(i + 1) % 5]],
        }
        for i in range(5)
    ]
    cap = [
        {
            "reference": ids[i],
            "candidate": ids[(i + 1) % 5],
            "category": "Technique",
            "text": ["The person whisks instead of stirring."],
        }
        for i in range(3)
    ]
    for name, rows in (("diffrank", rank), ("diffmcq", mcq), ("diffcap", cap)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


class RecordingScorer:
    """Deterministic scores from clip paths; records the questions it was asked."""

    name = "recording"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail_after = fail_after

    def _score(self, ref, cand) -> float:
        return zlib.crc32(f"{ref}|{cand}".encode()) / 2**32

    def _record(self, *args) -> None:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(args)

    def generate(self, refs, cands, questions):
        self._record(refs, cands, questions)
        return [f"caption {r.path.stem} {c.path.stem}" for r, c in zip(refs, cands, strict=True)]

    def loglik(self, refs, cands, questions, answers):
        self._record(refs, cands, questions, answers)
        return [self._score(r, c) for r, c in zip(refs, cands, strict=True)]

    def p_yes(self, refs, cands, questions):
        self._record(refs, cands, questions)
        return [self._score(r, c) for r, c in zip(refs, cands, strict=True)]


@pytest.mark.parametrize("task", ["diffcap", "diffmcq", "diffrank"])
def test_predictions_follow_the_official_format(bench, tmp_path, task):
    scorer = RecordingScorer()
    path = run_predictions(
        task,
        bench / f"{task}.jsonl",
        bench / "videos",
        scorer,
        tmp_path,
        batch_size=2,
        show_progress=False,
    )
    gt_lines = (bench / f"{task}.jsonl").read_text().splitlines()
    predictions = read_predictions(path, task, expected_count=len(gt_lines))
    assert len(predictions) == len(gt_lines)
    first_call = scorer.calls[0]
    if task == "diffmcq":
        # Two items x 4 options in one call, the options' pairs in order.
        refs, cands, questions, answers = first_call
        assert [r.clip_id for r in refs[:4]] == ["vid_a_0.0_1.5"] * 4
        assert [c.path.stem for c in cands[:4]] == ["vid_b", "vid_c", "vid_d", "vid_e"]
        assert questions[0] == difference_question("Tools/Equipment")
        assert answers == ["The person uses a whisk instead of a spoon."] * 8
    elif task == "diffrank":
        refs, cands, questions = first_call
        assert len(refs) == 8 and questions[0] == same_question("Tools/Equipment")
        row = json.loads(path.read_text().splitlines()[0])["scores"]
        assert row == pytest.approx([scorer._score(refs[k], cands[k]) for k in range(4)])
    else:
        assert json.loads(path.read_text().splitlines()[0]) == {
            "generated_text": "caption vid_a vid_b"
        }


def test_an_interrupted_run_resumes_to_the_same_file(bench, tmp_path):
    gt = bench / "diffrank.jsonl"
    expected = run_predictions(
        "diffrank",
        gt,
        bench / "videos",
        RecordingScorer(),
        tmp_path / "full",
        batch_size=2,
        show_progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        run_predictions(
            "diffrank",
            gt,
            bench / "videos",
            RecordingScorer(fail_after=2),
            tmp_path / "cut",
            batch_size=2,
            show_progress=False,
        )
    partial = tmp_path / "cut" / "predictions.jsonl.partial"
    assert (
        len(partial.read_text().splitlines()) == 4
        and not (tmp_path / "cut" / "predictions.jsonl").exists()
    )
    with partial.open("a") as handle:
        handle.write('{"scores": [0.1, 0.')  # a line torn by a crash
    resumed_scorer = RecordingScorer()
    resumed = run_predictions(
        "diffrank",
        gt,
        bench / "videos",
        resumed_scorer,
        tmp_path / "cut",
        batch_size=2,
        show_progress=False,
    )
    assert len(resumed_scorer.calls) == 1  # only the last item was left
    assert resumed.read_bytes() == expected.read_bytes()


def test_an_output_folder_of_another_run_is_refused(bench, tmp_path):
    run_predictions(
        "diffrank",
        bench / "diffrank.jsonl",
        bench / "videos",
        RandomScorer(),
        tmp_path,
        show_progress=False,
    )
    with pytest.raises(StepDiffError, match="holds a run of random"):
        run_predictions(
            "diffrank",
            bench / "diffrank.jsonl",
            bench / "videos",
            RecordingScorer(),
            tmp_path,
            show_progress=False,
        )


def test_stepdiff_predictions_do_not_depend_on_batch_size(bench, tmp_path):
    scorer = StepDiffScorer(build_model(load_config("tiny")))
    gt = bench / "diffmcq.jsonl"
    one = run_predictions(
        "diffmcq", gt, bench / "videos", scorer, tmp_path / "one", batch_size=1, show_progress=False
    )
    many = run_predictions(
        "diffmcq",
        gt,
        bench / "videos",
        scorer,
        tmp_path / "many",
        batch_size=5,
        show_progress=False,
    )
    for a, b in zip(one.read_text().splitlines(), many.read_text().splitlines(), strict=True):
        assert json.loads(a)["scores"] == pytest.approx(json.loads(b)["scores"], rel=1e-5)


def test_eval_command_predicts_and_scores(bench, tmp_path):
    from typer.testing import CliRunner

    from stepdiff.cli import app

    common = ["--gt", str(bench / "diffmcq.jsonl"), "--videos", str(bench / "videos")]
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--task",
            "diffmcq",
            *common,
            "--out",
            str(tmp_path / "s"),
            "--scorer",
            "stepdiff",
            "--config",
            "tiny",
            "--no-cache",
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout
    written = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert written == [
        "per_category.png",
        "predictions.jsonl",
        "report.json",
        "report.md",
        "run.json",
    ]
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["official"]["accuracy"] in {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    bad = CliRunner().invoke(
        app,
        ["eval", "--task", "diffmcq", *common, "--out", str(tmp_path / "b"), "--scorer", "oracle"],
    )
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("error: scorer 'oracle': expected one of")
