"""The evaluation runner: official prediction files from any scorer, batched and resumable."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest

from stepdiff.baselines.random import RandomScorer
from stepdiff.config import load_config
from stepdiff.data.formats import read_predictions
from stepdiff.data.questions import difference_question, same_question
from stepdiff.errors import StepDiffError
from stepdiff.eval.runner import run_predictions
from stepdiff.eval.scorers import StepDiffScorer
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
        ".lock",  # kept after the run (see stepdiff.locking.lock_folder)
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


# ----- resuming, locking and clip ids through `stepdiff eval` ------------------------------
def _eval(bench: Path, out: Path, *extra: str, gt: Path | None = None):
    """`stepdiff eval` of the random scorer on DiffRank into ``out``."""
    from typer.testing import CliRunner

    from stepdiff.cli import app

    args = ["eval", "--task", "diffrank", "--gt", str(gt or bench / "diffrank.jsonl")]
    args += ["--videos", str(bench / "videos"), "--out", str(out), "--scorer", "random"]
    return CliRunner().invoke(app, [*args, "--bootstrap", "0", *extra])


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: "), message
    return message


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (["--seed", "1"], "seed"),
        (["--config", "tiny"], "config"),
        (["--set", "num_frames=2"], "overrides"),
        (["--scorer", "feature-distance:tiny"], "scorer"),
        (["--llamacpp"], "llamacpp"),
    ],
)
def test_eval_refuses_to_resume_with_options_that_change_predictions(bench, tmp_path, change, key):
    out = tmp_path / "run"
    assert _eval(bench, out).exit_code == 0
    before = (out / "predictions.jsonl").read_bytes()
    message = _one_line_error(_eval(bench, out, *change))
    assert key in message.partition("with another ")[2] and str(out / "run.json") in message
    assert (out / "predictions.jsonl").read_bytes() == before
    assert _eval(bench, out).exit_code == 0  # the same options still resume


def test_eval_refuses_a_model_folder_whose_contents_changed(bench, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "projector.safetensors").write_bytes(b"one")
    assert _eval(bench, tmp_path / "run", "--model", str(model)).exit_code == 0
    (model / "projector.safetensors").write_bytes(b"two")
    message = _one_line_error(_eval(bench, tmp_path / "run", "--model", str(model)))
    assert "another model;" in message


def test_eval_refuses_an_out_folder_in_use_by_another_run(bench, tmp_path):
    from filelock import FileLock

    out = tmp_path / "run"
    out.mkdir()
    with FileLock(str(out / ".lock"), timeout=0):
        message = _one_line_error(_eval(bench, out))
    assert message == f"error: {out} is in use by another run (lock {out / '.lock'})"
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    assert _eval(bench, out).exit_code == 0  # free again once the other run ends


def _outside_video(tmp_path: Path) -> Path:
    """A real video outside --videos, which a clip id must not reach."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_synthetic_clip(tmp_path / "secret.mp4", SceneSpec(), seconds=2.0, size=48)


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_eval_refuses_clip_ids_outside_the_video_folder(bench, tmp_path, form):
    video = _outside_video(tmp_path / "outside")
    stem = video.with_suffix("")
    uid = os.path.relpath(stem, bench / "videos") if form == "relative" else str(stem)
    rows = (bench / "diffrank.jsonl").read_text().splitlines()
    row = json.loads(rows[1])
    row["targets"][2] = f"{uid}_0_1"
    rows[1] = json.dumps(row)
    gt = tmp_path / "gt.jsonl"
    gt.write_text("\n".join(rows) + "\n")
    message = _one_line_error(_eval(bench, tmp_path / "run", gt=gt))
    assert message.startswith(f"error: {gt}:2: field 'targets[2]': clip id '{uid}_0_1'")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_clip_resolver_reads_only_videos_inside_its_folder(bench, tmp_path):
    from stepdiff.errors import ClipSpecError
    from stepdiff.eval.runner import ClipResolver

    video = _outside_video(tmp_path)
    resolve = ClipResolver(bench / "videos")
    assert resolve("vid_a_0_1").path == bench / "videos" / "vid_a.mp4"
    for clip_id in (f"{video.with_suffix('')}_0_1", "../vid_a_0_1", f"{video}@0-1"):
        with pytest.raises(ClipSpecError):
            resolve(clip_id)


class InterruptedRandom(RandomScorer):
    """The random scorer, stopped (as by Ctrl-C) after ``calls`` batches."""

    def __init__(self, seed: int, calls: int) -> None:
        super().__init__(seed)
        self.calls = calls

    def p_yes(self, refs, cands, questions):
        if self.calls == 0:
            raise KeyboardInterrupt("simulated interruption")
        self.calls -= 1
        return super().p_yes(refs, cands, questions)


def test_random_scorer_resumed_gives_the_uninterrupted_predictions(bench, tmp_path):
    gt, videos = bench / "diffrank.jsonl", bench / "videos"
    kwargs = {"batch_size": 2, "show_progress": False}
    whole = run_predictions("diffrank", gt, videos, RandomScorer(7), tmp_path / "whole", **kwargs)
    with pytest.raises(KeyboardInterrupt):
        run_predictions("diffrank", gt, videos, InterruptedRandom(7, 1), tmp_path / "cut", **kwargs)
    # A new process: a new scorer of the same seed picks up after the first batch.
    resumed = run_predictions("diffrank", gt, videos, RandomScorer(7), tmp_path / "cut", **kwargs)
    assert resumed.read_bytes() == whole.read_bytes()
    kwargs["batch_size"] = 3
    other = run_predictions("diffrank", gt, videos, RandomScorer(7), tmp_path / "other", **kwargs)
    assert other.read_bytes() == whole.read_bytes()
