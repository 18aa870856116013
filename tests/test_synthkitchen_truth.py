"""Truth-checked DiffCap metrics: does a caption name the pair's real difference?"""

from __future__ import annotations

import json

import pytest

from stepdiff.data.formats import read_ground_truth
from stepdiff.errors import DataFormatError
from stepdiff.eval.score import score_files
from stepdiff.synthkitchen.builder import build_benchmark, load_clips
from stepdiff.synthkitchen.truth import Slot, judge_caption, judge_diffcap

TOOL_SLOTS = [Slot(("whisk",), "candidate"), Slot(("spoon", "wooden spoon"), "reference")]


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("truth")
    build_benchmark(out, "small", seed=0, render=False, audio=False, workers=1)
    items = read_ground_truth(out / "diffcap_heldout.jsonl", "diffcap")
    return out, items, load_clips(out)


@pytest.mark.parametrize(
    "caption, names, in_roles",
    [
        ("The person uses a whisk instead of a wooden spoon", True, True),
        ("Whisks instead of spoons.", True, True),  # inflections
        ("The person uses a spoon instead of a whisk", True, False),  # roles swapped
        ("The person uses a whisk and a spoon", True, False),  # no "instead of"
        ("The person uses a whisk instead of a knife", False, False),
        ("The person uses a fork instead of a knife", False, False),
    ],
)
def test_a_caption_is_judged_by_the_values_it_names(caption, names, in_roles):
    judged = judge_caption(caption, TOOL_SLOTS)
    assert (judged.names, judged.in_roles) == (names, in_roles)


def test_multi_word_values_and_sides_that_do_not_matter():
    slots = [Slot(("back-and-forth",), "candidate"), Slot(("in circles", "circular"), None)]
    assert judge_caption("stirs back and forth instead of in circles", slots).in_roles
    # A slot without a side (Actions' sub-actions) may stand anywhere.
    assert judge_caption("in circles instead of back and forth", slots).names
    assert not judge_caption("in circles instead of back and forth", slots).in_roles


def test_ground_truth_captions_name_their_difference_and_others_mostly_do_not(benchmark):
    _, items, clips = benchmark
    main = judge_diffcap(items, [item.text[0] for item in items], clips)
    assert all(j.names and j.in_roles for j in main)
    # Swapping the two sides keeps every value named, but out of role wherever the
    # difference has sides (all categories but Actions).
    swapped = [" instead of ".join(reversed(i.text[0].split(" instead of "))) for i in items]
    judged = judge_diffcap(items, swapped, clips)
    assert all(j.names for j in judged)
    sided = [j for i, j in zip(items, judged, strict=True) if i.category != "Actions"]
    assert not any(j.in_roles for j in sided)
    # Another item's caption names this item's difference only by coincidence.
    shifted = [items[(k + 1) % len(items)].text[0] for k in range(len(items))]
    assert sum(j.names for j in judge_diffcap(items, shifted, clips)) < 0.15 * len(items)


def test_score_files_reports_the_share_beside_cider(benchmark, tmp_path):
    folder, items, _ = benchmark
    right = [item.text[0] for item in items]
    captions = right[: len(items) // 2] + ["The person uses a fork instead of a knife"] * (
        len(items) - len(items) // 2
    )
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"generated_text": c}) + "\n" for c in captions))
    report = score_files("diffcap", folder / "diffcap_heldout.jsonl", pred, bootstrap=0)
    values = {m.name: m.value for m in report.metrics}
    assert values["names-difference"] == pytest.approx((len(items) // 2) / len(items))
    assert values["CIDEr-D"] > 0
    # Outside a SynthKitchen build there is no truth to check against.
    (tmp_path / "gt.jsonl").write_text((folder / "diffcap_heldout.jsonl").read_text())
    plain = score_files("diffcap", tmp_path / "gt.jsonl", pred, bootstrap=0)
    assert "names-difference" not in {m.name for m in plain.metrics}


def test_a_clip_missing_from_the_build_is_a_one_line_error(benchmark, tmp_path):
    folder, items, _ = benchmark
    gt = tmp_path / "diffcap.jsonl"
    row = {"reference": "nope_0_1", "candidate": items[0].candidate, "category": "Actions"}
    gt.write_text(json.dumps({**row, "text": ["x instead of y"]}) + "\n")
    (tmp_path / "clips.jsonl").write_text((folder / "clips.jsonl").read_text())
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"generated_text": "x"}) + "\n")
    with pytest.raises(DataFormatError, match="clip 'nope_0_1' is not in"):
        score_files("diffcap", gt, pred, bootstrap=0)
