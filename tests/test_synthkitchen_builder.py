"""SynthKitchen benchmark builder: official formats, splits, determinism, resume, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.synthkitchen.builder import (
    SIZES,
    BuildSize,
    build_benchmark,
    clear_ranking,
    load_clips,
    sample_clips,
)
from stepdiff.synthkitchen.differences import compare_category, similarity_scores
from stepdiff.synthkitchen.world import CATEGORIES, ClipSpec, heldout_combinations
from stepdiff.video.clip import parse_clip_id, resolve_clip
from stepdiff.video.decode import probe_video

BENCHMARK_FILES = [
    f"{task}_{split}.jsonl"
    for task in ("diffcap", "diffmcq", "diffrank")
    for split in ("test", "heldout")
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """The small benchmark, without videos."""
    out = tmp_path_factory.mktemp("sk_small")
    build_benchmark(out, "small", seed=0, render=False)
    return out


@pytest.fixture(scope="module")
def clips(small) -> dict[str, ClipSpec]:
    return load_clips(small)


def test_same_seed_same_bytes_other_seed_other_rows(small, tmp_path):
    again = build_benchmark(tmp_path / "again", "small", seed=0, render=False)
    training = ["clips.jsonl", "train_pairs.jsonl", "diffrank_train.jsonl", "diffmcq_train.jsonl"]
    training += [f"descriptions_{split}.jsonl" for split in ("heldout", "test", "train")]
    for name in [*BENCHMARK_FILES, *training, "summary.json"]:
        assert (tmp_path / "again" / name).read_bytes() == (small / name).read_bytes(), name
    assert again.files == sorted([*BENCHMARK_FILES, *training]) + ["summary.json"]
    build_benchmark(tmp_path / "other", "small", seed=1, render=False)
    assert (tmp_path / "other" / "diffcap_test.jsonl").read_bytes() != (
        small / "diffcap_test.jsonl"
    ).read_bytes()


def test_splits_are_disjoint_by_source_video_and_held_out_combinations_stay_held_out(clips):
    videos: dict[str, set[str]] = {}
    for spec in clips.values():
        videos.setdefault(spec.video_uid, set()).add(spec.split)
        held = (spec.tool, spec.ingredient) in heldout_combinations(spec.keystep)
        assert held == (spec.split == "heldout"), spec.clip_id
    assert all(len(splits) == 1 for splits in videos.values())  # a video has one split
    counts = Counter(spec.split for spec in clips.values())
    assert counts == {"train": 30, "test": 30, "heldout": 30}
    train_combos = {(s.keystep, s.tool, s.ingredient) for s in clips.values() if s.split == "train"}
    heldout_combos = {
        (s.keystep, s.tool, s.ingredient) for s in clips.values() if s.split == "heldout"
    }
    assert train_combos.isdisjoint(heldout_combos)


def check_pair(clips: dict[str, ClipSpec], reference: str, candidate: str, split: str) -> None:
    r, c = clips[reference], clips[candidate]
    for clip_id in (reference, candidate):
        parsed = parse_clip_id(clip_id)
        assert parsed.video_uid == clips[clip_id].video_uid
    assert r.split == c.split == split
    assert r.keystep == c.keystep and r.video_uid != c.video_uid


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_diffcap_rows_follow_the_official_format(small, clips, split):
    rows = read_jsonl(small / f"diffcap_{split}.jsonl")
    assert {row["category"] for row in rows} == set(CATEGORIES)
    for row in rows:
        assert list(row) == ["reference", "candidate", "category", "text"]
        check_pair(clips, row["reference"], row["candidate"], split)
        assert row["text"] and all(isinstance(t, str) and " instead of " in t for t in row["text"])
        comparison = compare_category(
            clips[row["reference"]], clips[row["candidate"]], row["category"]
        )
        assert comparison.score < 5 and row["text"] == comparison.texts()


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_diffmcq_rows_have_four_distinct_options_and_negatives_that_do_not_hold(
    small, clips, split
):
    rows = read_jsonl(small / f"diffmcq_{split}.jsonl")
    assert {row["category"] for row in rows} == set(CATEGORIES)
    gold_positions = Counter()
    for row in rows:
        assert list(row) == ["difference", "category", "options", "answer"]
        options = [tuple(o) for o in row["options"]]
        assert len(options) == 4 and len(set(options)) == 4
        assert all(len(o) == 2 for o in options)
        assert options.count(tuple(row["answer"])) == 1
        gold_positions[options.index(tuple(row["answer"]))] += 1
        for reference, candidate in options:
            check_pair(clips, reference, candidate, split)
        gold = tuple(clips[i] for i in row["answer"])
        difference = next(
            d
            for d in compare_category(*gold, row["category"]).differences
            if row["difference"] in d.captions
        )
        keystep = gold[0].keystep
        for option in options:
            pair = (clips[option[0]], clips[option[1]])
            assert pair[0].keystep == keystep
            if option != tuple(row["answer"]):
                assert not difference.holds(*pair), (row["difference"], option)
                shared = {pair[0].tool, pair[1].tool} & {gold[0].tool, gold[1].tool} or {
                    pair[0].ingredient,
                    pair[1].ingredient,
                } & {gold[0].ingredient, gold[1].ingredient}
                assert shared
    assert len(gold_positions) == 4  # the answer is not always in the same place


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_diffrank_rows_have_a_clear_ranking_from_the_rubric(small, clips, split):
    rows = read_jsonl(small / f"diffrank_{split}.jsonl")
    assert {row["category"] for row in rows} == set(CATEGORIES)
    distinct_values = Counter()
    for row in rows:
        assert list(row) == ["reference", "targets", "category", "scores"]
        assert len(row["targets"]) == 4 and len(set(row["targets"])) == 4
        assert row["reference"] not in row["targets"]
        scores = row["scores"]
        assert all(isinstance(s, int) and 0 <= s <= 5 for s in scores)
        assert clear_ranking(scores) and len(set(scores)) >= 3  # at most one tie
        distinct_values[len(set(scores))] += 1
        for target in row["targets"]:
            check_pair(clips, row["reference"], target, split)
        reference = clips[row["reference"]]
        assert scores == [
            similarity_scores(reference, clips[t])[row["category"]] for t in row["targets"]
        ]
    assert distinct_values[4] > 0


def test_training_diffrank_items_rank_train_clips_by_the_rubric(small, clips):
    rows = read_jsonl(small / "diffrank_train.jsonl")
    assert {row["category"] for row in rows} == set(CATEGORIES)
    references = Counter(row["reference"] for row in rows)
    for row in rows:
        reference = clips[row["reference"]]
        targets = [clips[t] for t in row["targets"]]
        assert reference.split == "train" and all(t.split == "train" for t in targets)
        assert len(set(row["targets"])) == 4
        assert all(t.keystep == reference.keystep for t in targets)
        assert all(t.video_uid != reference.video_uid for t in targets)
        assert row["scores"] == [similarity_scores(reference, t)[row["category"]] for t in targets]
        assert len(set(row["scores"])) > 1  # some order to learn; ties are kept
    # Several groups per reference (4 in each size's default), each in up to 6 categories.
    assert max(references.values()) > 6
    summary = json.loads((small / "summary.json").read_text())
    assert summary["rows"]["diffrank"]["train"]["total"] == len(rows)


def test_training_diffmcq_items_are_train_clips_in_the_benchmarks_format(small, clips):
    rows = read_jsonl(small / "diffmcq_train.jsonl")
    assert {row["category"] for row in rows} == set(CATEGORIES)
    for row in rows:
        assert row["answer"] in row["options"] and len(row["options"]) == 4
        assert all(clips[c].split == "train" for pair in row["options"] for c in pair)
    summary = json.loads((small / "summary.json").read_text())
    assert summary["rows"]["diffmcq"]["train"]["total"] == len(rows)


def test_train_pairs_and_summary_counts(small, clips):
    pairs = read_jsonl(small / "train_pairs.jsonl")
    assert pairs
    for row in pairs:
        r, c = clips[row["reference"]], clips[row["candidate"]]
        assert r.split == c.split == "train" and r.video_uid != c.video_uid
        assert row["scores"] == similarity_scores(r, c)
        assert set(row["differences"]) == set(CATEGORIES)
        for category, differences in row["differences"].items():
            assert (row["scores"][category] < 5) == bool(differences)
    summary = json.loads((small / "summary.json").read_text())
    assert summary["seed"] == 0 and summary["size"] == "small"
    assert summary["clips"] == {"train": 30, "test": 30, "heldout": 30}
    assert summary["train_pairs"] == len(pairs)
    for task in ("diffcap", "diffmcq", "diffrank"):
        for split in ("test", "heldout"):
            rows = read_jsonl(small / f"{task}_{split}.jsonl")
            counts = summary["rows"][task][split]
            assert counts["total"] == len(rows)
            assert counts == {
                **{c: sum(r["category"] == c for r in rows) for c in CATEGORIES},
                "total": len(rows),
            }


def test_large_is_ten_times_small():
    assert len(sample_clips(SIZES["large"], 0)) == 10 * len(sample_clips(SIZES["small"], 0))


TINY = BuildSize(train_videos=1, test_videos=2, heldout_videos=1, clips_per_video=2)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sk_rendered")
    summary = build_benchmark(out, TINY, seed=5, render=True, audio=False, workers=1)
    return out, summary


def test_rendered_clip_ids_resolve_inside_their_videos(rendered):
    out, summary = rendered
    assert summary.videos_rendered == 4 and summary.videos_reused == 0
    clips = load_clips(out)
    assert len(clips) == 8
    for clip_id, spec in clips.items():
        ref = resolve_clip(clip_id, out / "videos")
        assert ref.path == out / "videos" / f"{spec.video_uid}.mp4"
        info = probe_video(ref.path)
        assert (info.width, info.fps) == (128, 12.0)
        assert 0 <= ref.start < ref.end <= info.duration
        assert (ref.end - ref.start) * info.fps >= 16
        transcript = json.loads((out / "videos" / f"{spec.video_uid}.json").read_text())
        assert any(s["clip_id"] == clip_id for s in transcript["sentences"])


def test_rebuild_reuses_current_videos_and_rerenders_changed_ones(rendered):
    out, _ = rendered
    videos = sorted((out / "videos").glob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in videos}
    stale = out / "videos" / "sk_v9999.mp4"
    stale.write_bytes(b"old")
    transcript = videos[0].with_suffix(".json")
    data = json.loads(transcript.read_text())
    transcript.write_text(json.dumps({**data, "spec_hash": "changed"}))
    summary = build_benchmark(out, TINY, seed=5, render=True, audio=False, workers=1)
    assert (summary.videos_rendered, summary.videos_reused) == (1, 3)
    assert not stale.exists()
    assert [p.stat().st_mtime_ns == stamps[p] for p in videos] == [False, True, True, True]
    assert not list((out / "videos").glob(".*"))  # no temp files left behind


def test_cli_build_and_show(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["synthkitchen", "build", "--out", str(tmp_path), "--no-render", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "train pairs" in result.output
    assert all((tmp_path / name).is_file() for name in BENCHMARK_FILES)
    clip_id = next(iter(load_clips(tmp_path)))
    shown = runner.invoke(app, ["synthkitchen", "show", clip_id, "--data", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert clip_id in shown.output and "Tools/Equipment" in shown.output
    as_json = runner.invoke(
        app, ["synthkitchen", "show", clip_id, "--data", str(tmp_path), "--json"]
    )
    assert json.loads(as_json.output)["clip_id"] == clip_id
    missing = runner.invoke(app, ["synthkitchen", "show", "sk_v9_1.0_2.0", "--data", str(tmp_path)])
    assert missing.exit_code == 1
    bad_size = runner.invoke(
        app, ["synthkitchen", "build", "--out", str(tmp_path), "--size", "huge", "--no-render"]
    )
    assert bad_size.exit_code == 1


def test_a_clip_rendered_alone_shows_what_it_shows_inside_its_video(rendered, tmp_path):
    """render_clip (the demo's clips) draws the clip as the source video does, from the
    clip's first frame: the same sampled frames, up to video coding noise."""
    import numpy as np

    from stepdiff.synthkitchen.render import render_clip
    from stepdiff.video.clip import ClipRef
    from stepdiff.video.decode import read_clip_frames

    out, _ = rendered
    clip_id, spec = next(iter(load_clips(out).items()))
    alone = render_clip(tmp_path / "alone.mp4", spec)
    info = probe_video(alone)
    assert (info.width, info.fps) == (128, 12.0)
    assert info.duration == pytest.approx(spec.duration, abs=0.1)
    assert not list(tmp_path.glob(".*"))  # written atomically
    inside = read_clip_frames(resolve_clip(clip_id, out / "videos"), 4).frames
    by_itself = read_clip_frames(ClipRef(alone), 4).frames
    difference = np.abs(np.stack(inside).astype(float) - np.stack(by_itself).astype(float))
    assert difference.mean() < 4.0
