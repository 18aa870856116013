"""The data-generation pipeline end to end on the small SynthKitchen build: the CLI,
shards == single run, resume after SIGKILL, Ray shards, the LLM path with a scripted
generator, object tags, and bad input that is counted rather than fatal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.datagen.config import DatagenConfig
from stepdiff.datagen.pipeline import largest_first, run_pipeline, run_stage
from stepdiff.errors import ConfigError
from stepdiff.train.data import read_training_records

OUTPUTS = (
    "descriptions.jsonl",
    "pairs.jsonl",
    "qa_raw.jsonl",
    "qa.jsonl",
    "qa_dropped.jsonl",
    "interleaved.jsonl",
    "single_video.jsonl",
)

# A scripted TextGenerator, importable by subprocesses and Ray workers through
# PYTHONPATH (``--llm py:fake_datagen_llm:make``). FAKE_LLM_DELAY slows it down.
FAKE_LLM = """
import os, re, time

class FakeLLM:
    name = "fake-llm"

    def generate(self, prompts, *, max_new_tokens=256, temperature=0.0, seed=0):
        time.sleep(float(os.environ.get("FAKE_LLM_DELAY", "0")) * len(prompts))
        return [self.reply(messages[-1]["content"]) for messages in prompts]

    def reply(self, text):
        if text.startswith("Video 1:"):
            one, two = re.match(r"Video 1: (.*)\\. Video 2: (.*)\\. Summ", text, re.S).groups()
            a, b = (d.split("Narration: ")[-1].split(". ")[0] for d in (one, two))
            question = "What is the main difference between the two videos?"
            return (
                f"Summary: The videos differ.\\nQ1: {question}\\nA1: {b} instead of {a}.\\n"
                f"Q2: Tell me a joke.\\nA2: No jokes here.\\nQ3: {question}\\nA3: Nothing at all."
            )
        keystep = re.search(r"^Keystep: (.*)$", text, re.M).group(1)
        if keystep == "broken":
            return "   "
        narration = re.search(r"^Narration: (.*)$", text, re.M).group(1)
        return f"Description: The person does {keystep}. {narration}"

def make():
    return FakeLLM()

def make_reporting_threads():
    import torch

    llm = FakeLLM()
    llm.name = f"fake-llm-{torch.get_num_threads()}-threads"
    return llm
"""


@pytest.fixture(scope="module")
def fake_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fake_llm")
    (folder / "fake_datagen_llm.py").write_text(FAKE_LLM)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def clips(small_synthkitchen: Path) -> Path:
    return small_synthkitchen / "clips.jsonl"


def _config(out: Path, clips: Path, **options) -> DatagenConfig:
    defaults = {"split": "train", "llm": "none", "qa_source": "rubric", "tags": False}
    return DatagenConfig(out=out, clips=clips, **{**defaults, **options})


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory, clips: Path) -> Path:
    """An unsharded, uninterrupted run of every stage (rule-based text, rubric QA)."""
    out = tmp_path_factory.mktemp("single")
    run_pipeline(_config(out, clips))
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_run_end_to_end(tmp_path, clips, single_run):
    out = tmp_path / "cli"
    args = ["datagen", "run", "--out", str(out), "--clips", str(clips), "--split", "train"]
    args += ["--llm", "none", "--qa-source", "rubric", "--no-tags"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "QA kept" in result.output
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (single_run / name).read_bytes(), name
    qa = _lines(out / "qa.jsonl")
    assert qa and set(qa[0]) == {
        "qa_id",
        "pair_id",
        "reference",
        "candidate",
        "question",
        "answer",
        "keystep",
        "source_clips",
        "prompt_id",
        "model",
        "seed",
    }
    assert {q["model"] for q in qa} == {"rubric"}
    assert all(q["source_clips"] == [q["reference"], q["candidate"]] for q in qa)
    descriptions = _lines(out / "descriptions.jsonl")
    assert len(descriptions) == 30 and all(d["description"] for d in descriptions)
    assert descriptions[0]["sources"]["narration"], "SynthKitchen transcripts give narration"
    interleaved = _lines(out / "interleaved.jsonl")
    assert interleaved and all(len(r["clips"]) == 2 and all(r["narrations"]) for r in interleaved)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["clips"] == 30 and stats["qa"]["total"] == len(qa)
    assert sum(stats["qa"]["per_category"].values()) == len(qa)
    assert stats["pairs"]["max_pairs_per_clip"] <= 4
    assert set(stats["timings"]) == {"describe", "pairs", "qa", "filter", "interleaved"}
    assert "## QA kept" in (out / "stats.md").read_text()
    # A rerun finds every stage complete and rewrites nothing.
    before = {name: (out / name).stat().st_mtime_ns for name in OUTPUTS}
    assert CliRunner().invoke(app, args).exit_code == 0
    assert {name: (out / name).stat().st_mtime_ns for name in OUTPUTS} == before


def test_shards_merge_to_the_single_run(tmp_path, clips, single_run):
    out = tmp_path / "sharded"
    config = _config(out, clips)
    # One shard at a time, as separate workers would: the last one merges.
    for shard in (1, 0, 2):
        outcomes = run_pipeline(config, shard=shard, num_shards=3, stages=("describe",))
    assert outcomes[-1].done and (out / "descriptions.shard-2-of-3.jsonl").is_file()
    run_pipeline(config, num_shards=3)  # every stage, all shards in turn
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (single_run / name).read_bytes(), name
    report = json.loads((out / "filter_report.json").read_text())
    assert report["shards"] == 3


def test_merge_command_joins_finished_shards(tmp_path, clips, single_run):
    out = tmp_path / "merge"
    config = _config(out, clips)
    run_stage("describe", config, shard=0, num_shards=2)
    result = CliRunner().invoke(app, ["datagen", "merge", "describe", "--out", str(out)])
    assert result.exit_code == 1 and "shard 1 of 2" in result.output.replace("shards", "shard")
    run_stage("describe", config, shard=1, num_shards=2)  # merges by itself
    (out / "descriptions.jsonl").unlink()
    result = CliRunner().invoke(app, ["datagen", "merge", "describe", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "descriptions.jsonl").read_bytes() == (
        single_run / "descriptions.jsonl"
    ).read_bytes()


def _describe_command(out: Path, clips: Path) -> list[str]:
    return [
        sys.executable, "-m", "stepdiff.cli", "datagen", "describe", "--out", str(out),
        "--clips", str(clips), "--split", "train", "--no-tags", "--batch-size", "1",
        "--llm", "py:fake_datagen_llm:make",
    ]  # fmt: skip


def _kill_once_written(process: subprocess.Popen, partial: Path, items: int, timeout: float) -> int:
    """SIGKILL ``process`` once its stage's partial file holds ``items`` finished items
    (after its header line); how many it holds then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if partial.is_file() and partial.read_text().count("\n") >= items + 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the stage ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return partial.read_text().count("\n") - 1


def test_resume_after_sigkill_is_byte_identical(tmp_path, clips, fake_llm_dir):
    reference = tmp_path / "reference"
    run_stage("describe", _config(reference, clips, llm="py:fake_datagen_llm:make"))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(fake_llm_dir), "FAKE_LLM_DELAY": "0.15"}
    process = subprocess.Popen(
        _describe_command(out, clips), env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    done = _kill_once_written(process, out / "describe.partial", 5, timeout=60)
    assert 5 <= done < 30, "killed mid-stage"
    assert not (out / "descriptions.jsonl").exists()
    env["FAKE_LLM_DELAY"] = "0"
    finished = subprocess.run(_describe_command(out, clips), env=env, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()
    report = json.loads((out / "describe_report.json").read_text())
    assert report["resumed_items"] >= done >= 5
    descriptions = (out / "descriptions.jsonl").read_bytes()
    assert descriptions == (reference / "descriptions.jsonl").read_bytes()
    first = json.loads(descriptions.splitlines()[0])
    assert (first["model"], first["prompt_id"]) == ("fake-llm", "aggregate_v1")


@pytest.mark.integration
def test_resume_after_sigkill_with_llama_cpp_greedy_writes_the_same_bytes(tmp_path, clips):
    """The real writer path: llama.cpp, greedy, one thread (the packaged SmolLM2 GGUF
    stands in for the larger writer: same code, seconds instead of minutes)."""
    pytest.importorskip("llama_cpp")
    train = [line for line in clips.read_text().splitlines() if '"split": "train"' in line]
    few = tmp_path / "clips.jsonl"  # 8 clips: the kill lands after 3
    few.write_text("\n".join(train[:8]) + "\n")
    command = [
        *_describe_command(tmp_path / "whole", few)[:-1],
        "llamacpp:smollm2-135m-instruct",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(command, env=env, capture_output=True)
    assert whole.returncode == 0, whole.stderr.decode()
    out = tmp_path / "killed"
    command[command.index(str(tmp_path / "whole"))] = str(out)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = _kill_once_written(process, out / "describe.partial", 3, timeout=600)  # busy CI
    assert 3 <= done < 8, "killed mid-stage"
    finished = subprocess.run(command, env=env, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()
    assert json.loads((out / "describe_report.json").read_text())["resumed_items"] >= 3
    expected = (tmp_path / "whole" / "descriptions.jsonl").read_bytes()
    assert (out / "descriptions.jsonl").read_bytes() == expected


def test_ray_runs_shards_as_tasks(tmp_path, clips, single_run):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        outcome = run_stage("describe", _config(out, clips), num_shards=2, ray=True)
    finally:
        ray.shutdown()
    assert outcome.done and outcome.report["shards"] == 2
    assert (out / "descriptions.jsonl").read_bytes() == (
        single_run / "descriptions.jsonl"
    ).read_bytes()


def test_worker_processes_share_the_cores_and_write_the_same_bytes(
    tmp_path, clips, single_run, fake_llm_dir
):
    seen: list[tuple[int, int]] = []
    out = tmp_path / "workers"
    outcome = run_stage(
        "describe", _config(out, clips), workers=2, progress=lambda _: lambda *a: seen.append(a)
    )
    assert outcome.done and outcome.report["shards"] == 8  # four per worker
    assert (out / "descriptions.jsonl").read_bytes() == (
        single_run / "descriptions.jsonl"
    ).read_bytes()
    total = len(_lines(out / "descriptions.jsonl"))
    assert seen[-1] == (total, total)
    assert not list(out.glob("*.partial"))
    # Each of the 2 workers gets half the cores (the writer takes torch's thread count).
    llm_out = tmp_path / "llm-workers"
    run_stage(
        "describe",
        _config(llm_out, clips, llm="py:fake_datagen_llm:make_reporting_threads"),
        workers=2,
    )
    models = {r["model"] for r in _lines(llm_out / "descriptions.jsonl") if r.get("model")}
    assert models == {f"fake-llm-{max(1, (os.cpu_count() or 1) // 2)}-threads"}


def test_workers_get_the_largest_shards_first():
    # Two workers, shards of 3, 9, 5, 9 and 4 items: in index order one runs 3+5+9 beside
    # 9+4 (the last ends at 17); largest first, 9+5 beside 9+4+3 (it ends at 16).
    assert largest_first([3, 9, 5, 9, 4]) == [1, 3, 2, 4, 0]
    assert largest_first([]) == []


def test_llm_path_with_a_scripted_generator(tmp_path, clips, single_run, fake_llm_dir):
    out = tmp_path / "llm"
    out.mkdir()
    for name in ("descriptions.jsonl", "pairs.jsonl"):
        shutil.copy(single_run / name, out / name)
    config = _config(out, clips, llm="py:fake_datagen_llm:make", qa_source="llm")
    run_pipeline(config, stages=("qa", "filter"))
    raw = _lines(out / "qa_raw.jsonl")
    assert raw and all(r["model"] == "fake-llm" and r["prompt_id"] == "qa_v2" for r in raw)
    assert all(len(r["qa"]) == 3 and r["raw"].startswith("Summary:") for r in raw)
    report = json.loads((out / "filter_report.json").read_text())
    counts = report["counts"]
    # Per pair: Q1 kept, Q2 is no question, Q3 repeats Q1's question.
    assert counts["kept"] == len(raw) and counts["qa_in"] == 3 * len(raw)
    assert counts["dropped: malformed"] == len(raw) == counts["dropped: duplicate"]
    assert report["examples"]["dropped: malformed"][0]["question"] == "Tell me a joke."
    qa = _lines(out / "qa.jsonl")
    assert all(q["qa_id"].endswith("#0") for q in qa)
    # The ablation keeps everything that parsed, in the same format.
    run_stage("filter", replace(config, filter=False), force=True)
    assert len(_lines(out / "qa.jsonl")) == 3 * len(raw)


def test_object_tags_on_two_clips(tmp_path, clips):
    two = tmp_path / "two.jsonl"
    two.write_text("".join(clips.read_text().splitlines(keepends=True)[:2]))
    out = tmp_path / "tags"
    config = _config(out, two, split=None, tags=True, video_dir=clips.parent / "videos")
    run_stage("describe", config)
    for record in _lines(out / "descriptions.jsonl"):
        tags = record["sources"]["tags"]
        assert all(isinstance(name, str) and 0 < score <= 1 for name, score in tags)
        assert [s for _, s in tags] == sorted((s for _, s in tags), reverse=True)


def _silent_video(path: Path) -> None:
    """A 1 s mp4 with a video stream and an all-zero AAC audio track."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        video = container.add_stream("h264", rate=12)
        video.width = video.height = 64
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for i in range(16):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")  # fmt: skip
            chunk.sample_rate, chunk.pts = 16000, i * 1024
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def test_bad_media_and_replies_are_counted_not_fatal(tmp_path, clips, fake_llm_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clips.parent / "videos" / "sk_v0001.mp4", videos / "mute.mp4")  # no audio
    _silent_video(videos / "quiet.mp4")
    (videos / "latin.srt").write_bytes(
        "1\n00:00:00,000 --> 00:00:02,000\nUn café.\n".encode("cp1252")
    )
    rows = [
        {"clip_id": "mute_0.5_2.0", "keystep": "stir"},
        {"clip_id": "quiet_0_1", "keystep": "stir"},
        {"clip_id": "latin_0_1", "keystep": "stir"},
        {"clip_id": "gone_0_1", "keystep": "broken"},
    ]
    clip_list = tmp_path / "clips.jsonl"
    clip_list.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = DatagenConfig(out=tmp_path / "t", clips=clip_list, video_dir=videos, tags=False,
                         llm="py:fake_datagen_llm:make")  # fmt: skip
    report = run_stage("describe", base).report
    counts = report["counts"]
    assert counts["issue: narration_non_utf8"] == 1
    assert counts["issue: no_transcript"] == 3
    assert counts["failed: description reply is empty"] == 1 and counts["described"] == 3
    latin = _lines(tmp_path / "t" / "descriptions.jsonl")[2]
    assert latin["sources"]["narration"] == "Un café."
    whisper = run_stage("describe", replace(base, out=tmp_path / "w", asr="whisper")).report
    assert whisper["counts"]["issue: no_audio"] == 1
    assert whisper["counts"]["issue: silent_audio"] == 1
    assert whisper["counts"]["issue: video_missing"] == 2  # latin and gone


def test_a_malformed_clip_list_line_is_a_one_line_error(tmp_path):
    clip_list = tmp_path / "clips.jsonl"
    clip_list.write_text('{"clip_id": "v_0_1", "keystep": "stir"}\n{"clip_id": "v_1_2", \n')
    result = CliRunner().invoke(
        app, ["datagen", "describe", "--out", str(tmp_path / "o"), "--clips", str(clip_list)]
    )
    assert result.exit_code == 1
    message = result.output.strip()
    assert "clips.jsonl:2: malformed JSON" in message and len(message.splitlines()) == 1


def test_changed_options_ask_for_force(tmp_path, clips, single_run):
    out = tmp_path / "force"
    shutil.copytree(single_run, out)
    result = CliRunner().invoke(
        app, ["datagen", "pairs", "--out", str(out), "--pairs-per-clip", "2"]
    )
    assert result.exit_code == 1 and "--force" in result.output


def test_same_questions_join_the_rubric_qa_and_need_it(tmp_path, clips, single_run):
    out = tmp_path / "same"
    shutil.copytree(single_run, out)
    for name in ("qa_raw.jsonl", "qa_report.json", "qa.jsonl", "filter_report.json"):
        (out / name).unlink()
    run_pipeline(_config(out, clips, same_questions="paraphrase"))
    plain, more = _lines(single_run / "qa.jsonl"), _lines(out / "qa.jsonl")
    closed = [q for q in more if q["question"].endswith("Answer YES or NO.")]
    assert closed and {q["answer"] for q in closed} == {"YES", "NO"}
    assert [q for q in more if q not in closed] == plain
    assert not any("answer_probability" in q or "alternative" in q for q in more)
    # Soft targets reach qa.jsonl, and training reads them.
    for name in ("qa_raw.jsonl", "qa_report.json", "qa.jsonl", "filter_report.json"):
        (out / name).unlink()
    run_pipeline(_config(out, clips, same_questions="soft"))
    soft = [q for q in _lines(out / "qa.jsonl") if q["question"].endswith("Answer YES or NO.")]
    assert soft and {(q["answer"], q["alternative"]) for q in soft} == {("YES", "NO")}
    assert {q["answer_probability"] for q in soft} <= {s / 5 for s in range(6)}
    records = read_training_records("pair_qa", [out / "qa.jsonl"])
    assert sorted(r.answer_probability for r in records if r.alternative) == sorted(
        q["answer_probability"] for q in soft
    )
    with pytest.raises(ConfigError, match="--same-questions needs rubric QA"):
        run_stage("qa", _config(tmp_path / "llm", clips, qa_source="llm", same_questions="graded"))
    expected = "--same-questions 'yes': expected one of none, paraphrase, graded, threshold, soft"
    with pytest.raises(ConfigError, match=expected):
        _config(tmp_path / "bad", clips, same_questions="yes")
