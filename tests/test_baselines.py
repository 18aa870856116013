"""Scorers behind the one evaluation interface: StepDiff, single-video, blind, Socratic, random."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepdiff.baselines.feature_distance import FeatureDistanceScorer
from stepdiff.baselines.random import RandomScorer
from stepdiff.baselines.text_llm import TextLLMScorer
from stepdiff.config import load_config
from stepdiff.eval.scorers import SingleVideoScorer, StepDiffScorer
from stepdiff.llm.loading import load_frozen_llm
from stepdiff.model import build_model
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

QUESTION = "What is the main difference between these videos in the category Tools/Equipment?"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[ClipRef]:
    folder: Path = tmp_path_factory.mktemp("baselines")
    scenes = [SceneSpec(tool="spoon"), SceneSpec(tool="whisk"), SceneSpec(tool="spatula")]
    return [
        ClipRef(write_synthetic_clip(folder / f"c{i}.mp4", scene, seconds=1.0, size=48))
        for i, scene in enumerate(scenes)
    ]


@pytest.fixture(scope="module")
def model():
    return build_model(load_config("tiny"))


DESCRIPTIONS = {"c0": "a wooden spoon stirs", "c1": "a metal whisk beats", "c2": "a spatula flips"}


def describe(clip: ClipRef) -> str:
    return DESCRIPTIONS[clip.path.stem]


def test_stepdiff_scorer_matches_the_model(model, clips):
    scorer = StepDiffScorer(model, max_new_tokens=4)
    ref, cand = clips[0], clips[1]
    features = model.clip_features([ref, cand])
    expected = model.loglik(features[:1], features[1:], [QUESTION], ["A whisk."]).tolist()
    assert scorer.loglik([ref], [cand], [QUESTION], ["A whisk."]) == pytest.approx(expected)
    assert len(scorer.generate([ref, ref], [cand, clips[2]], [QUESTION] * 2)) == 2


def test_single_video_scorer_ignores_the_reference(model, clips):
    scorer = SingleVideoScorer(model)
    a = scorer.loglik([clips[0]], [clips[1]], [QUESTION], ["A whisk."])[0]
    b = scorer.loglik([clips[2]], [clips[1]], [QUESTION], ["A whisk."])[0]
    assert a == pytest.approx(b, rel=1e-6)
    full = StepDiffScorer(model).loglik([clips[0]], [clips[1]], [QUESTION], ["A whisk."])[0]
    assert abs(full - a) > 1e-3


def test_blind_llm_cannot_tell_options_apart(clips):
    scorer = TextLLMScorer(load_frozen_llm("tiny"))
    scores = scorer.loglik(
        clips[:3], clips[::-1], [QUESTION] * 3, ["A whisk instead of a spoon."] * 3
    )
    assert scores[0] == pytest.approx(scores[1], abs=1e-5) == pytest.approx(scores[2], abs=1e-5)


def test_socratic_reads_the_descriptions_and_batches_exactly(clips):
    scorer = TextLLMScorer(load_frozen_llm("tiny"), describe)
    refs, cands = [clips[0], clips[0], clips[2]], [clips[1], clips[2], clips[1]]
    batched = scorer.loglik(refs, cands, [QUESTION] * 3, ["A whisk instead of a spoon."] * 3)
    assert batched[0] != pytest.approx(batched[1], abs=1e-4)
    single = [
        scorer.loglik([r], [c], [QUESTION], ["A whisk instead of a spoon."])[0]
        for r, c in zip(refs, cands, strict=True)
    ]
    assert batched == pytest.approx(single, rel=1e-6)
    p = scorer.p_yes(refs, cands, ["Same tool? Answer YES or NO."] * 3)
    assert all(0 < value < 1 for value in p)
    assert scorer._context(clips[0], clips[1]) == (
        "Here is the first video: a wooden spoon stirs. "
        "Here is the second video: a metal whisk beats."
    )


def test_random_scorer_is_seeded(clips):
    a = RandomScorer(seed=3).p_yes(clips, clips, ["q"] * 3)
    assert a == RandomScorer(seed=3).p_yes(clips, clips, ["q"] * 3)
    assert a != RandomScorer(seed=4).p_yes(clips, clips, ["q"] * 3)


def test_random_scores_are_a_function_of_the_seed_and_the_row_alone(clips):
    scorer = RandomScorer(seed=3)
    refs, cands = clips, clips[::-1]
    answers = ["a whisk", "a spoon", "a pan"]
    together = scorer.loglik(refs, cands, ["q"] * 3, answers)
    # A fresh scorer asked about the last row alone (as after a resume) draws the same.
    assert RandomScorer(seed=3).loglik(refs[2:], cands[2:], ["q"], answers[2:]) == together[2:]
    assert scorer.loglik(refs, cands, ["q"] * 3, answers) == together  # no hidden state
    assert len(set(together)) == 3 and all(0 <= score < 1 for score in together)
    captions = scorer.generate(refs, cands, ["q"] * 3)
    assert RandomScorer(seed=3).generate(refs[1:], cands[1:], ["q"] * 2) == captions[1:]


def test_feature_distance_scores_closeness_of_mean_features(clips):
    from stepdiff.encoders.featurize import ClipFeaturizer
    from stepdiff.encoders.registry import build_frame_encoder
    from stepdiff.errors import ConfigError
    from stepdiff.eval.registry import build_scorer

    featurizer = ClipFeaturizer(build_frame_encoder("tiny"), num_frames=4)
    scorer = FeatureDistanceScorer(featurizer)
    refs, cands = [clips[0]] * 3, clips
    scores = scorer.p_yes(refs, cands, ["Same tool? Answer YES or NO."] * 3)
    means = featurizer(clips).mean(dim=(1, 2))  # (3, D)
    distances = [float((means[0] - means[i]).norm()) for i in range(3)]
    assert scores == pytest.approx([1 / (1 + d) for d in distances], rel=1e-5)
    assert scores[0] == pytest.approx(1.0) and max(scores[1:]) < 1.0  # a clip is closest to itself
    with pytest.raises(ConfigError, match="DiffRank only"):
        scorer.loglik(refs, cands, [QUESTION] * 3, ["A whisk."] * 3)
    assert build_scorer("feature-distance:tiny").name == "feature-distance"
