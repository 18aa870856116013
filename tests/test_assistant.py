"""The coaching assistant on tiny random-init models and generated clips: batching,
severities, moments, rankings, JSON shape and errors; the severity fit on hand-computed
cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stepdiff.assistant import (
    Assistant,
    CalibrationError,
    SeverityCalibration,
    UnknownCategoryError,
    check_categories,
    similarity_to_severity,
    uncalibrated_severity,
)
from stepdiff.assistant.calibration import pav_fit
from stepdiff.assistant.errors import AssistantError
from stepdiff.assistant.fingerprint import projector_fingerprint
from stepdiff.assistant.moments import dtw_path, most_different, step_to_frame
from stepdiff.config import load_config
from stepdiff.data.categories import CATEGORIES
from stepdiff.data.questions import difference_question, same_question
from stepdiff.model import build_model
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import SceneSpec, render_synthetic_frame, write_synthetic_clip

SCENE_A = SceneSpec(tool="spoon")
SCENE_B = SceneSpec(
    vessel="pot",
    vessel_color=(170, 40, 40),
    tool="whisk",
    tool_color=(40, 60, 200),
    food_color=(40, 160, 60),
    background=(30, 30, 60),
)


def write_switching_clip(
    path: Path, first: SceneSpec, second: SceneSpec, *, seconds: float, switch: float, size: int
) -> Path:
    """A clip that shows ``first`` until ``switch`` seconds, then ``second`` (24 fps)."""
    fps = 24
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for index in range(round(seconds * fps)):
            scene = first if index / fps < switch else second
            image = render_synthetic_frame(scene, index, fps=fps, size=size)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, ClipRef]:
    folder = tmp_path_factory.mktemp("assistant")
    return {
        "a": ClipRef(write_synthetic_clip(folder / "a.mp4", SCENE_A, seconds=2.0, size=64)),
        "b": ClipRef(write_synthetic_clip(folder / "b.mp4", SCENE_B, seconds=2.0, size=64)),
        "switch": ClipRef(
            write_switching_clip(
                folder / "switch.mp4", SCENE_A, SCENE_B, seconds=2.0, switch=1.0, size=64
            )
        ),
    }


@pytest.fixture(scope="module")
def model():
    return build_model(load_config("tiny"))


@pytest.fixture()
def assistant(model):
    return Assistant(model)


class CallCounter:
    """Wraps a model method and counts its calls (and the rows of each)."""

    def __init__(self, monkeypatch, model, name: str) -> None:
        self.rows: list[int] = []
        original = getattr(model, name)

        def wrapped(reference, candidate, questions, *args, **kwargs):
            self.rows.append(len(questions))
            return original(reference, candidate, questions, *args, **kwargs)

        monkeypatch.setattr(model, name, wrapped)


# --- severity calibration: the fit, by hand -------------------------------------------


def test_pav_pools_violators_into_their_mean():
    assert pav_fit([0.1, 0.2, 0.3, 0.4], [1, 3, 2, 4]) == (
        [0.1, 0.2, 0.3, 0.4],
        [1.0, 2.5, 2.5, 4.0],
    )
    # Wholly decreasing: one block at the mean, kept at its two ends.
    assert pav_fit([0.3, 0.1, 0.2], [1, 5, 3]) == ([0.1, 0.3], [3.0, 3.0])
    # Equal p_same pool first (0.5: mean of 0 and 4), then 1 < 2 is already in order.
    assert pav_fit([0.5, 0.5, 0.2], [0, 4, 1]) == ([0.2, 0.5], [1.0, 2.0])
    # A later low value pulls two earlier blocks down with it: (4 + 4 + 1) / 3 = 3.
    assert pav_fit([0.1, 0.2, 0.3, 0.4], [0, 4, 4, 1]) == ([0.1, 0.2, 0.4], [0.0, 3.0, 3.0])


def test_pav_can_start_from_equal_count_groups():
    x, y = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1, 2, 3, 4, 5]
    assert pav_fit(x, y, groups=3) == (x, [0.5, 0.5, 2.5, 2.5, 4.5, 4.5])
    # The lone low point (score 1) no longer makes a knot of its own: (1 + 3) / 2 = 2.
    assert pav_fit([0.1, 0.2, 0.3, 0.4], [1, 3, 2, 3], groups=2) == (
        [0.1, 0.2, 0.3, 0.4],
        [2.0, 2.0, 2.5, 2.5],
    )
    # Group borders never split equal p_same: 0.2 x 3 stays in the first group.
    assert pav_fit([0.1, 0.2, 0.2, 0.2, 0.3, 0.4], [0, 1, 2, 3, 4, 4], groups=2) == (
        [0.1, 0.2, 0.3, 0.4],
        [1.5, 1.5, 4.0, 4.0],
    )
    # Noise: raw PAV spreads over 3 severities, equal-count groups keep it middling.
    rng = np.random.default_rng(0)
    p_same, scores = rng.uniform(0.4, 0.6, 400), rng.integers(0, 6, 400)
    raw = SeverityCalibration.fit(p_same, scores, bins=None)
    grouped = SeverityCalibration.fit(p_same, scores)
    assert len({raw.severity(p) for p in p_same}) > 1
    assert {grouped.severity(p) for p in p_same} == {3}


def test_severity_scales():
    # Human similarity 0..5 -> severity 5..1, symmetric about the middle.
    assert [similarity_to_severity(s) for s in range(6)] == [5, 4, 3, 3, 2, 1]
    assert similarity_to_severity(2.5) == 3 and similarity_to_severity(-1) == 5
    # Uncalibrated: equal-width bins of p_same.
    points = [0.0, 0.19, 0.2, 0.39, 0.4, 0.5, 0.6, 0.79, 0.8, 1.0]
    assert [uncalibrated_severity(p) for p in points] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_calibration_interpolates_and_clamps():
    cal = SeverityCalibration.fit(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1, 2, 3, 4, 5], model="m", split="heldout", rows=2
    )
    assert cal.p_same == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    assert cal.similarity_at(0.35) == pytest.approx(2.5)
    assert [cal.severity(p) for p in (0.0, 0.1, 0.2, 0.35, 0.5, 0.6, 0.95)] == [5, 5, 4, 3, 2, 1, 1]
    # Bands: where the interpolated similarity crosses 0.625, 1.875, 3.125, 4.375.
    bands = [(b["severity"], b["p_same_from"], b["p_same_to"]) for b in cal.bands()]
    expected = [
        (5, 0.0, 0.1625),
        (4, 0.1625, 0.2875),
        (3, 0.2875, 0.4125),
        (2, 0.4125, 0.5375),
        (1, 0.5375, 1.0),
    ]
    assert [b[0] for b in bands] == [e[0] for e in expected]
    assert np.allclose([b[1:] for b in bands], [e[1:] for e in expected])
    assert cal.points == 6 and cal.rows == 2
    assert cal.diagnostics["kendall_tau_p_same_vs_score"] == pytest.approx(1.0)


def test_uninformative_p_same_gives_middling_severities():
    # p_same unrelated to the human scores: the fit is flat at the mean score (2.5).
    cal = SeverityCalibration.fit([0.2, 0.4, 0.6, 0.8], [5, 0, 5, 0])
    assert {cal.severity(p) for p in np.linspace(0, 1, 11)} == {3}
    assert [b["severity"] for b in cal.bands()] == [3]


def test_calibration_file_round_trip_and_errors(tmp_path):
    cal = SeverityCalibration.fit([0.1, 0.9], [1, 4], model="m", fingerprint="abc", split="test")
    path = cal.save(tmp_path / "cal.json")
    data = json.loads(path.read_text())
    assert data["model"] == "m" and data["projector_fingerprint"] == "abc"
    assert data["points"] == 2 and data["map"] == {"p_same": [0.1, 0.9], "similarity": [1, 4]}
    assert [band["severity"] for band in data["severity_bands"]] == [4, 3, 2]
    assert SeverityCalibration.load(path) == cal
    assert not list(tmp_path.glob(".*tmp"))  # the temp file was renamed, not left behind

    (tmp_path / "corrupt.json").write_text('{"format": 1, "kind": ')
    bad_map = dict(data, map={"p_same": [0.1, 0.9], "similarity": [4, 1]})
    (tmp_path / "decreasing.json").write_text(json.dumps(bad_map))
    (tmp_path / "other.json").write_text(json.dumps({"format": 7}))
    for name, message in [
        ("missing.json", "not found"),
        ("corrupt.json", "unreadable calibration file"),
        ("decreasing.json", "must not decrease"),
        ("other.json", "not a severity calibration"),
    ]:
        with pytest.raises(CalibrationError, match=message) as caught:
            SeverityCalibration.load(tmp_path / name)
        assert str(caught.value).startswith(str(tmp_path / name))
        assert "\n" not in str(caught.value)


def test_a_calibration_for_other_weights_is_refused(model):
    mine = SeverityCalibration((0.0, 1.0), (0.0, 5.0), fingerprint=projector_fingerprint(model))
    assert Assistant(model, mine).calibrated
    other = SeverityCalibration((0.0, 1.0), (0.0, 5.0), model="x", fingerprint="0" * 16)
    with pytest.raises(CalibrationError, match="fitted for model 'x'"):
        Assistant(model, other)
    # fp16 export keeps the fingerprint: it hashes the fp16 rounding of the weights.
    exported = build_model(load_config("tiny"))
    with torch.no_grad():
        for param in exported.projector.parameters():
            param.copy_(param.half().float())
    assert projector_fingerprint(exported) == projector_fingerprint(model)


def test_the_fingerprint_follows_only_what_changes_the_scores(model, tmp_path):
    from stepdiff.model.build import load_projector_state

    before = projector_fingerprint(model)
    state = {k: v.clone() for k, v in model.projector.state_dict().items()}
    # A checkpoint saved before the input statistics existed loads with identity
    # statistics, and the same fingerprint as the projector that stores them.
    old = {k: v for k, v in state.items() if k not in ("input_mean", "input_std")}
    reloaded = build_model(load_config("tiny"))
    load_projector_state(reloaded.projector, old, tmp_path / "old")
    assert projector_fingerprint(reloaded) == before
    # Statistics away from identity change the video tokens, so the fingerprint.
    with torch.no_grad():
        reloaded.projector.input_std.fill_(2.0)
    assert projector_fingerprint(reloaded) != before


# --- categories -------------------------------------------------------------------------


def test_categories_are_checked():
    assert check_categories(None) == list(CATEGORIES)
    assert check_categories(["Visuals", "Actions", "Visuals"]) == ["Visuals", "Actions"]
    with pytest.raises(UnknownCategoryError) as caught:
        check_categories(["Tools"])
    message = str(caught.value)
    assert "'Tools'" in message and "'Tools/Equipment'" in message and "\n" not in message


# --- moments ----------------------------------------------------------------------------


def test_dtw_follows_a_slower_candidate():
    # The candidate shows each of the reference's 3 states for 2 steps.
    ref = torch.eye(3)[:, None, :]  # (T=3, P=1, D=3)
    cand = torch.eye(3).repeat_interleave(2, dim=0)[:, None, :]  # (6, 1, 3)
    from stepdiff.assistant.moments import frame_distances

    assert dtw_path(frame_distances(ref, cand)) == [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]
    # Equal speeds, identical clips: frame by frame.
    assert dtw_path(np.zeros((3, 3))) == [(0, 0), (1, 1), (2, 2)]


def test_most_different_does_not_repeat_a_frame():
    ref = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])[:, None, :]  # (4, 1, 2)
    cand = torch.tensor([[1.0, 0], [1, 0], [1, 0], [1, 0]])[:, None, :]
    pairs = most_different(ref, cand, count=3)
    # The path is diagonal; (0, 0) and (1, 1) are equally close, the earlier one wins.
    assert [(p.reference_step, p.candidate_step, p.distance) for p in pairs] == [
        (2, 2, pytest.approx(1.0)),
        (3, 3, pytest.approx(1.0)),
        (0, 0, pytest.approx(0.0)),
    ]
    assert step_to_frame(3, 4, 4) == 3 and step_to_frame(1, 4, 8) == 3


def test_moments_find_where_the_candidate_changes(assistant, clips):
    # Identical in the first second, a different scene in the second: the tiny random
    # encoder must see it, and the top moments must lie after the switch.
    report = assistant.report(clips["a"], clips["switch"], ["Visuals"], with_captions=False)
    moments = report.categories[0].moments
    assert len(moments) == 3
    # The two frames after the switch come first, then the identical first half.
    assert all(m.candidate_time > 1.0 and m.reference_time > 1.0 for m in moments[:2])
    assert moments[2].candidate_time < 1.0
    assert [m.distance for m in moments] == sorted((m.distance for m in moments), reverse=True)
    top = moments[0]
    assert top.candidate_time == report.candidate_times[top.candidate_frame]
    # It really discriminates: first-half frames (identical scenes) are far closer.
    features = assistant.model.clip_features([clips["a"], clips["switch"]])  # (2, T, P, D)
    from stepdiff.assistant.moments import frame_distances

    cost = frame_distances(features[0], features[1])
    assert top.distance > 10 * max(cost[0, 0], cost[1, 1])


# --- reports ----------------------------------------------------------------------------


def test_report_batches_and_matches_the_model(monkeypatch, model, clips):
    assistant = Assistant(model)
    p_yes = CallCounter(monkeypatch, model, "p_yes")
    generate = CallCounter(monkeypatch, model, "generate")
    report = assistant.report(clips["a"], clips["b"], max_new_tokens=6)
    assert p_yes.rows == [6] and generate.rows == [6]  # one batch each, all categories
    assert [c.category for c in report.categories] == list(CATEGORIES)
    features = model.clip_features([clips["a"], clips["b"]])
    ref, cand = features[0:1].expand(6, -1, -1, -1), features[1:2].expand(6, -1, -1, -1)
    expected_p = model.p_yes(ref, cand, [same_question(c) for c in CATEGORIES]).tolist()
    expected_captions = model.generate(
        ref, cand, [difference_question(c) for c in CATEGORIES], max_new_tokens=6
    )
    assert [c.p_same for c in report.categories] == pytest.approx(expected_p)
    assert [c.caption for c in report.categories] == expected_captions
    assert [c.severity for c in report.categories] == [uncalibrated_severity(p) for p in expected_p]
    assert report.calibrated is False and report.projector_trained is False
    # Times of the sampled frames: bin centres of the 2 s clip, on 24 fps frames.
    assert report.reference_times == pytest.approx([0.25, 0.75, 1.25, 1.75], abs=1 / 24)
    assert all(c.moments == report.categories[0].moments for c in report.categories)


def test_report_uses_the_calibration(model, clips):
    major = SeverityCalibration((0.0, 1.0), (0.0, 0.0))  # everything looks very different
    report = Assistant(model, major).report(
        clips["a"], clips["b"], ["Actions", "Technique"], with_captions=False, num_moments=0
    )
    assert report.calibrated is True
    assert [(c.category, c.severity, c.caption, c.moments) for c in report.categories] == [
        ("Actions", 5, "", []),
        ("Technique", 5, "", []),
    ]


def test_report_json_shape(assistant, clips):
    segment = ClipRef(clips["b"].path, 0.5, 1.5)
    report = assistant.report(clips["a"], segment, ["Tools/Equipment"], max_new_tokens=3)
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) == {
        "reference",
        "candidate",
        "reference_times",
        "candidate_times",
        "calibrated",
        "categories",
        "projector_trained",
    }
    assert data["candidate"] == f"{clips['b'].path}@0.5-1.5"
    item = data["categories"][0]
    assert set(item) == {"category", "caption", "p_same", "severity", "moments"}
    assert set(item["moments"][0]) == {
        "reference_time",
        "candidate_time",
        "reference_frame",
        "candidate_frame",
        "distance",
    }
    # Segment times are in the video file's timeline.
    assert all(0.5 <= t <= 1.5 for t in data["candidate_times"])
    assert all(0.5 <= m["candidate_time"] <= 1.5 for m in item["moments"])


def test_frames_are_what_the_model_sees(assistant, clips):
    times, frames = assistant.frames(clips["switch"])
    assert len(times) == len(frames) == assistant.model.config.num_frames
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert times == sorted(times) and times[0] < 1.0 < times[-1]
    # The first frame shows scene A's light background, the last scene B's dark one.
    assert frames[0][2, 2].mean() > 150 and frames[-1][2, 2].mean() < 100


def test_frames_above_the_resize_limit_are_scaled_while_decoding(assistant, clips, monkeypatch):
    from stepdiff.video import transforms

    monkeypatch.setattr(transforms, "MAX_RESIZE_INPUT_PIXELS", 32 * 32)
    _, frames = assistant.frames(clips["switch"])
    assert all(f.shape == (32, 32, 3) for f in frames)


def test_bad_requests(assistant, clips):
    with pytest.raises(UnknownCategoryError, match="'Colour'"):
        assistant.report(clips["a"], clips["b"], ["Colour"])
    with pytest.raises(AssistantError, match="at least 2 candidates, got 1"):
        assistant.rank(clips["a"], [clips["b"]])
    with pytest.raises(UnknownCategoryError):
        assistant.rank(clips["a"], [clips["b"], clips["a"]], ["Ingredients", "Tool"])


# --- ranking ----------------------------------------------------------------------------


def test_rank_orders_by_p_same_in_one_batch(monkeypatch, model, clips):
    """p_yes is replaced by a known function of the features and the question, so the
    expected order is known: the reference itself is closest, scene B furthest, and the
    category offsets show that rows and categories are not mixed up."""
    offsets = {same_question(c): 0.01 * i for i, c in enumerate(CATEGORIES)}
    calls: list[int] = []

    def fake_p_yes(reference, candidate, questions, **_):
        calls.append(len(questions))
        gap = (reference - candidate).abs().mean(dim=(1, 2, 3))  # (N,)
        return torch.exp(-gap) * 0.9 + torch.tensor([offsets[q] for q in questions])

    monkeypatch.setattr(model, "p_yes", fake_p_yes)
    candidates = [clips["b"], clips["switch"], clips["a"]]
    result = Assistant(model).rank(clips["a"], candidates, ["Visuals", "Ingredients"])
    assert calls == [6]  # 3 candidates x 2 categories in one batch
    assert result.overall == [2, 1, 0]
    assert result.per_category == {"Visuals": [2, 1, 0], "Ingredients": [2, 1, 0]}
    same = result.candidates[2]
    assert same.candidate == str(clips["a"])
    assert same.p_same == pytest.approx({"Visuals": 0.94, "Ingredients": 0.90})
    assert same.overall == pytest.approx(0.92)
    for cand in result.candidates:
        assert cand.overall == pytest.approx(sum(cand.p_same.values()) / 2)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"reference", "per_category", "overall", "candidates", "categories"}
    assert set(data["candidates"][0]) == {"candidate", "p_same", "overall"}


def test_rank_with_the_real_tiny_model_is_consistent(assistant, clips):
    result = assistant.rank(clips["a"], [clips["b"], clips["switch"], clips["a"]])
    assert set(result.per_category) == set(CATEGORIES)
    for category, order in result.per_category.items():
        scores = [result.candidates[k].p_same[category] for k in order]
        assert scores == sorted(scores, reverse=True)
    overall = [result.candidates[k].overall for k in result.overall]
    assert overall == sorted(overall, reverse=True)
    assert all(0 < p < 1 for c in result.candidates for p in c.p_same.values())
    assert not any(math.isnan(c.overall) for c in result.candidates)


def test_ask_is_the_models_answer(assistant, clips):
    questions = ["What differs?", "Am I done?"]
    answers = assistant.ask(clips["a"], clips["b"], questions, max_new_tokens=5)
    assert answers == assistant.model.ask(clips["a"], clips["b"], questions, 5)


@pytest.mark.integration
def test_moments_with_the_real_frame_encoder(tmp_path):
    """EfficientNet-Lite0 (ImageNet weights) also places the change in the second half,
    on 8 frames of a 4 s clip that switches scene at 2 s."""
    model = build_model(load_config("tiny", ["encoder=efficientnet-lite0", "num_frames=8"]))
    ref = ClipRef(write_synthetic_clip(tmp_path / "a.mp4", SCENE_A, seconds=4.0, size=128))
    cand = ClipRef(
        write_switching_clip(
            tmp_path / "switch.mp4", SCENE_A, SCENE_B, seconds=4.0, switch=2.0, size=128
        )
    )
    report = Assistant(model).report(ref, cand, ["Visuals"], with_captions=False)
    moments = report.categories[0].moments
    assert all(m.candidate_time > 2.0 for m in moments)
    from stepdiff.assistant.moments import frame_distances

    features = model.clip_features([ref, cand])  # (2, 8, 49, 1280)
    cost = frame_distances(features[0], features[1])
    first_half = max(cost[i, i] for i in range(4))
    assert moments[-1].distance > 5 * first_half
