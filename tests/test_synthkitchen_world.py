"""SynthKitchen world, difference captions, severity rubric and rendering."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stepdiff.synthkitchen import render as render_module
from stepdiff.synthkitchen.differences import (
    MAX_PENALTY,
    compare,
    compare_category,
    similarity_scores,
)
from stepdiff.synthkitchen.render import (
    ClipPainter,
    espeak_available,
    layout_video,
    narration,
    phase_times,
    render_video,
)
from stepdiff.synthkitchen.world import (
    CATEGORIES,
    CATEGORY_ATTRIBUTES,
    COLORS,
    KEYSTEPS,
    MATERIAL_COLORS,
    ClipSpec,
    heldout_combinations,
    sample_clip,
    sample_prototypes,
)
from stepdiff.video.clip import ClipRef, parse_clip_id
from stepdiff.video.decode import probe_video, read_clip_frames


def make_spec(**changes) -> ClipSpec:
    """A hand-made whisk clip; keyword arguments change single attributes."""
    base = ClipSpec(
        video_uid="sk_v0042",
        start=12.0,
        end=15.0,
        keystep="whisk",
        split="test",
        seed=7,
        ingredient="eggs",
        ingredient_color="brown",
        quantity=3,
        tool="fork",
        tool_color="black",
        vessel="bowl",
        vessel_material="glass",
        motion="circular",
        speed="fast",
        actions=("add", "liquid", "season", "work"),
        skipped=None,
        doneness="streaky",
        final_state="smooth",
        plate="round plate",
        garnish="herbs",
    )
    return replace(base, **changes)


def sampled(n: int, seed: int = 0) -> list[ClipSpec]:
    rng = random.Random(seed)
    prototypes = sample_prototypes(rng, 3)
    return [
        sample_clip(
            rng,
            rng.choice(prototypes[keystep]),
            video_uid=f"sk_v{i:04d}",
            split=("train", "test", "heldout")[i % 3],
            seed=i,
        )
        for i in range(n)
        for keystep in KEYSTEPS
    ]


# --- world -------------------------------------------------------------------------------


def test_clip_spec_round_trips_through_json_and_has_an_official_clip_id():
    spec = make_spec()
    assert spec.clip_id == "sk_v0042_12.0_15.0"
    parsed = parse_clip_id(spec.clip_id)
    assert (parsed.video_uid, parsed.start, parsed.end) == ("sk_v0042", 12.0, 15.0)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["clip_id"] == spec.clip_id
    assert ClipSpec.from_dict(data) == spec
    with pytest.raises(ValueError, match="does not match"):
        ClipSpec.from_dict({**data, "clip_id": "sk_v0042_0.0_1.0"})


@pytest.mark.parametrize(
    "changes",
    [
        {"tool": "knife"},  # not a whisking tool
        {"ingredient_color": "purple"},  # eggs do not come in purple
        {"vessel_material": "wooden"},  # no wooden bowls here
        {"actions": ("work", "add", "liquid", "season")},  # not an allowed order
        {"actions": ("add", "liquid", "work"), "skipped": None},  # a sub-action lost
        {"split": "val"},
        {"start": 3.0, "end": 2.0},
    ],
)
def test_clip_spec_rejects_values_outside_the_world(changes):
    with pytest.raises(ValueError):
        make_spec(**changes)


def test_a_skipped_sub_action_is_valid():
    spec = make_spec(actions=("add", "liquid", "work"), skipped="season")
    assert spec.skipped == "season"


def test_every_category_has_attributes_that_vary_within_each_keystep():
    assert tuple(CATEGORY_ATTRIBUTES) == CATEGORIES
    specs = sampled(30)
    for keystep in KEYSTEPS:
        clips = [s for s in specs if s.keystep == keystep]
        for category, attributes in CATEGORY_ATTRIBUTES.items():
            for attribute in attributes:
                key = "actions" if attribute == "order" else attribute
                values = {getattr(s, key) for s in clips}
                assert len(values) >= 2, (keystep, category, attribute)


def test_sampling_is_deterministic_and_respects_the_held_out_combinations():
    first, second = sampled(12, seed=3), sampled(12, seed=3)
    assert first == second
    assert first != sampled(12, seed=4)
    for spec in first:
        held = (spec.tool, spec.ingredient) in heldout_combinations(spec.keystep)
        assert held == (spec.split == "heldout"), spec


def test_held_out_combinations_leave_every_tool_and_ingredient_seen_in_train():
    for keystep, step in KEYSTEPS.items():
        held = heldout_combinations(keystep)
        assert held
        for tool in step.tools:
            assert any((tool, i) not in held for i in step.ingredients), (keystep, tool)
        for ingredient in step.ingredients:
            assert any((t, ingredient) not in held for t in step.tools), (keystep, ingredient)


# --- differences and severity ------------------------------------------------------------


def test_tool_difference_reads_candidate_instead_of_reference():
    reference, candidate = make_spec(tool="fork"), make_spec(tool="whisk")
    comparison = compare_category(reference, candidate, "Tools/Equipment")
    assert comparison.score == 3  # one major attribute
    main = comparison.main
    assert main is not None and main.attribute == "tool"
    assert "The person uses a whisk instead of a fork" in main.captions
    for caption in comparison.texts():
        before, _, after = caption.partition(" instead of ")
        assert "whisk" in before and "fork" in after, caption
    assert main.holds(reference, candidate)
    assert not main.holds(candidate, reference)  # direction matters
    for category in CATEGORIES:  # nothing else differs
        if category != "Tools/Equipment":
            assert compare_category(reference, candidate, category).score == 5


def test_quantity_and_speed_captions():
    ing = compare_category(make_spec(quantity=3), make_spec(quantity=2), "Ingredients")
    assert ing.score == 4  # minor: off by one
    assert "The candidate adds two eggs instead of three" in ing.texts()
    tech = compare_category(make_spec(speed="fast"), make_spec(speed="slow"), "Technique")
    assert "The eggs are whisked slowly instead of quickly" in tech.texts()
    assert tech.score == 3  # slow vs fast is major


def test_action_captions_for_order_and_skips():
    reference = make_spec()
    swapped = make_spec(actions=("add", "season", "liquid", "work"))
    order = compare_category(reference, swapped, "Actions")
    assert order.score == 4  # one adjacent swap is minor
    assert order.texts()[0] == (
        "The person seasons with salt before adding the milk instead of after adding the milk"
    )
    skipped = make_spec(actions=("add", "liquid", "work"), skipped="season")
    skip = compare_category(reference, skipped, "Actions")
    assert skip.texts()[0] == "The person skips the seasoning instead of seasoning"
    assert skip.main is not None and skip.main.holds(reference, skipped)
    assert not skip.main.holds(skipped, reference)


def test_identical_specs_score_five_everywhere_with_no_captions():
    spec = make_spec()
    assert similarity_scores(spec, spec) == {c: 5 for c in CATEGORIES}
    assert all(c.differences == () for c in compare(spec, spec).values())


LADDERS = {
    "Tools/Equipment": [
        {"tool_color": "red"},
        {"vessel_material": "ceramic"},
        {"tool": "whisk"},
        {"vessel": "pot", "vessel_material": "copper"},
    ],
    "Ingredients": [{"quantity": 2}, {"ingredient_color": "white"}, {"ingredient": "cream"}],
    "Technique": [{"speed": "medium"}, {"motion": "back-and-forth"}, {"speed": "slow"}],
    "Visuals": [
        {"doneness": "evenly mixed"},
        {"final_state": "lumpy"},
        {"doneness": "pale and fluffy"},
    ],
    "Serving / Presentation": [
        {"garnish": "sesame seeds"},
        {"plate": "slate"},
        {"garnish": "none"},
    ],
    "Actions": [
        {"actions": ("add", "season", "liquid", "work")},
        {"actions": ("add", "season", "work"), "skipped": "liquid"},
    ],
}


@pytest.mark.parametrize("category", CATEGORIES)
def test_severity_falls_strictly_along_a_ladder_of_growing_differences(category):
    reference = make_spec()
    changes: dict = {}
    scores = [5]
    for step in LADDERS[category]:
        changes.update(step)
        if category == "Ingredients" and "ingredient" in step:
            changes["ingredient_color"] = "pink"  # cream's colour
        scores.append(compare_category(reference, make_spec(**changes), category).score)
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores), scores
    if category not in ("Actions",):
        assert scores[-1] <= 1


def test_scores_are_consistent_and_captions_hold_on_random_pairs():
    specs = sampled(8)
    by_step: dict[str, list[ClipSpec]] = {}
    for spec in specs:
        by_step.setdefault(spec.keystep, []).append(spec)
    seen_scores = set()
    for clips in by_step.values():
        for reference in clips:
            for candidate in clips:
                comparison = compare(reference, candidate)
                assert similarity_scores(reference, candidate) == {
                    c: v.score for c, v in comparison.items()
                }
                for category, result in comparison.items():
                    assert 0 <= result.score <= 5
                    assert 0 <= result.penalty <= MAX_PENALTY[category]
                    assert (result.score == 5) == (result.penalty == 0) == (not result.texts())
                    seen_scores.add(result.score)
                    for difference in result.differences:
                        assert difference.holds(reference, candidate)
                    for text in result.texts():
                        assert " instead of " in text and text[0].isupper(), text
                        assert "  " not in text and "{" not in text, text
    assert seen_scores == {0, 1, 2, 3, 4, 5}


# --- rendering ---------------------------------------------------------------------------


def frame_at(spec: ClipSpec, seconds: float) -> np.ndarray:
    return ClipPainter(spec, 128, 128).frame(seconds).astype(np.float32)


def test_painted_frames_change_over_time_and_show_the_sub_actions():
    spec = make_spec()
    painter = ClipPainter(spec, 128, 128)
    times = phase_times(spec)
    assert list(times) == [*spec.actions, "plate"]
    frames = [painter.frame(i / 12).astype(np.float32) for i in range(int(spec.duration * 12))]
    assert len(frames) >= 16 and frames[0].shape == (128, 128, 3)
    steps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert sum(s > 0.5 for s in steps) >= len(steps) // 2  # motion most of the time


def test_vessel_material_and_tool_colour_are_visible():
    cx, cy, r = 0.42 * 128, 0.44 * 128, 0.3 * 128
    inside = (slice(int(cy - 0.4 * r), int(cy + 0.4 * r)), slice(int(cx - 0.5 * r), int(cx)))
    for material in ("glass", "ceramic", "stainless-steel"):
        # Before anything is added, the inside of the bowl shows its material's colour.
        mean = frame_at(make_spec(vessel_material=material), 0.0)[inside].mean(axis=(0, 1))
        assert np.abs(mean - np.asarray(MATERIAL_COLORS[material])).max() < 3, material
    # The tool rests at the upper right before the motion starts.
    rest = (slice(int(0.3 * 128), int(0.4 * 128)), slice(int(0.8 * 128), int(0.9 * 128)))
    red, blue = (
        frame_at(make_spec(tool_color=c), 0.0)[rest].mean(axis=(0, 1)) for c in ("red", "blue")
    )
    assert red[0] - red[2] > 20 and blue[2] - blue[0] > 20


def food_pixels(frame: np.ndarray, color: str) -> int:
    return int((np.abs(frame - np.asarray(COLORS[color], dtype=np.float32)).sum(axis=2) < 30).sum())


def test_quantity_doneness_final_plate_and_garnish_are_visible():
    before_work = phase_times(make_spec())["work"][0] - 0.01
    two = food_pixels(
        frame_at(make_spec(quantity=2, ingredient_color="brown"), before_work), "brown"
    )
    four = food_pixels(
        frame_at(make_spec(quantity=4, ingredient_color="brown"), before_work), "brown"
    )
    assert 1.6 < four / two < 2.4
    # Whisking to "pale and fluffy" shifts the food colour much further than "streaky".
    spec = make_spec(ingredient="cream", ingredient_color="pink", final_state="smooth")
    end_of_work = phase_times(spec)["work"][1] - 0.01
    pale = frame_at(replace(spec, doneness="pale and fluffy"), end_of_work)
    streaky = frame_at(replace(spec, doneness="streaky"), end_of_work)
    assert food_pixels(streaky, "pink") > 200 and food_pixels(pale, "pink") < 20
    # The last frame: food on the plate, with a green herb garnish only when asked for.
    last = 2.99
    herbs = frame_at(make_spec(garnish="herbs"), last)
    plain = frame_at(make_spec(garnish="none"), last)
    plate = (slice(int(0.65 * 128), int(0.95 * 128)), slice(int(0.65 * 128), int(0.95 * 128)))

    def greens(frame):
        pixels = frame[plate]
        return int(
            ((pixels[..., 1] - pixels[..., 0] > 40) & (pixels[..., 1] - pixels[..., 2] > 40)).sum()
        )

    assert greens(herbs) > 5 and greens(plain) == 0


def test_fast_motion_moves_more_per_frame_than_slow():
    def motion(speed: str) -> float:
        spec = make_spec(speed=speed, final_state="lumpy")
        start, end = phase_times(spec)["work"]
        painter = ClipPainter(spec, 128, 128)
        times = np.arange(start + 0.05, end - 0.1, 1 / 12)
        frames = [painter.frame(t).astype(np.float32) for t in times]
        return float(
            np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)])
        )

    assert motion("fast") > 1.5 * motion("slow")


def test_narration_follows_the_spec():
    spec = make_spec(quantity=2)
    sentences = [text for _, text in narration(spec)]
    assert sentences[0] == "First I add two brown eggs to the bowl."
    assert any("whisk them quickly in circles with a black fork" in s for s in sentences)
    assert sentences[-1] == "I serve them on a round plate with fresh herbs."


@pytest.fixture(scope="module")
def one_video(tmp_path_factory) -> tuple[Path, list[ClipSpec]]:
    clips, _, _ = layout_video([make_spec(), make_spec(keystep="whisk", tool="whisk", seed=9)])
    folder = tmp_path_factory.mktemp("sk_video")
    render_video(folder, clips, audio=False)
    return folder, clips


def test_rendered_video_resolves_each_clip_segment(one_video):
    folder, clips = one_video
    video = folder / "sk_v0042.mp4"
    info = probe_video(video)
    assert (info.width, info.height, info.fps, info.codec) == (128, 128, 12.0, "h264")
    assert not info.has_audio
    for clip in clips:
        assert clip.end <= info.duration
        frames = read_clip_frames(ClipRef(video, clip.start, clip.end), 16).frames
        assert frames.shape == (16, 128, 128, 3)
        assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 2
    transcript = json.loads((folder / "sk_v0042.json").read_text())
    assert transcript["clips"] == [c.clip_id for c in clips]
    starts = [s["start"] for s in transcript["sentences"]]
    assert starts == sorted(starts) and len(starts) == sum(len(narration(c)) for c in clips)
    assert all(s["end"] <= transcript["duration"] for s in transcript["sentences"])


def test_rendering_is_deterministic(one_video, tmp_path):
    folder, clips = one_video
    render_video(tmp_path, clips, audio=False)
    assert (tmp_path / "sk_v0042.mp4").read_bytes() == (folder / "sk_v0042.mp4").read_bytes()


def test_no_audio_track_without_espeak(monkeypatch, tmp_path):
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    assert not espeak_available()
    clips, _, _ = layout_video([make_spec()])
    video = render_video(tmp_path, clips)  # audio=None: decided by espeak's presence
    assert not probe_video(video).has_audio
    assert json.loads((tmp_path / "sk_v0042.json").read_text())["audio"] is False


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_spoken_narration_track_with_espeak(tmp_path):
    clips, _, _ = layout_video([make_spec()])
    video = render_video(tmp_path, clips)
    info = probe_video(video)
    assert info.has_audio
    import av

    with av.open(str(video)) as container:
        samples = np.concatenate(
            [f.to_ndarray().ravel() for f in container.decode(container.streams.audio[0])]
        )
    assert np.abs(samples).max() > 0.05  # speech, not silence
