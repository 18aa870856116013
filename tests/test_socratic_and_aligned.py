"""Baselines that read SynthKitchen ground truth or train on it: Socratic (oracle
descriptions) and VLEmbed's offline alignment head."""

from __future__ import annotations

import json

import pytest
import torch

from stepdiff.baselines.describers import OracleDescriber
from stepdiff.baselines.train_vlembed import train_aligned_space
from stepdiff.baselines.vlembed import VLEmbedScorer, load_aligned_space
from stepdiff.data.descriptions import joined_description
from stepdiff.errors import ConfigError
from stepdiff.eval.registry import ScorerOptions, build_scorer
from stepdiff.eval.runner import run_predictions
from stepdiff.model_options import ModelOptions
from stepdiff.synthkitchen.builder import load_clips
from stepdiff.video.clip import ClipRef, resolve_clip


def test_oracle_descriptions_state_the_ground_truth(small_synthkitchen):
    describe = OracleDescriber.from_file(small_synthkitchen / "clips.jsonl")
    for clip_id, spec in load_clips(small_synthkitchen).items():
        text = describe(resolve_clip(clip_id, small_synthkitchen / "videos"))
        assert spec.tool in text and spec.ingredient_color in text, text
    with pytest.raises(ConfigError, match="no ground truth"):
        describe(ClipRef(small_synthkitchen / "videos" / "x.mp4"))


def test_oracle_fields_are_the_descriptions_the_model_is_aligned_to(small_synthkitchen):
    describe = OracleDescriber.from_file(small_synthkitchen, fields=True)
    written = {}
    for line in (small_synthkitchen / "descriptions_train.jsonl").read_text().splitlines():
        record = json.loads(line)
        written[record["clip_id"]] = joined_description(record["fields"])
    for clip_id, text in list(written.items())[:5]:
        assert describe(resolve_clip(clip_id, small_synthkitchen / "videos")) == text
        assert text.count("\n") == 6 and text.startswith("Step: ")
    tiny = ModelOptions(config="tiny", cache=False)
    scorer = build_scorer("socratic-oracle:fields", ScorerOptions(tiny, clips=small_synthkitchen))
    assert scorer.name == "socratic-oracle:fields" and scorer.describe.fields


def test_socratic_oracle_runs_on_the_benchmark(small_synthkitchen, tmp_path):
    tiny = ModelOptions(config="tiny", cache=False)
    options = ScorerOptions(model=tiny, clips=small_synthkitchen / "clips.jsonl")
    scorer = build_scorer("socratic-oracle", options)
    # The first 4 items: the tiny LLM's byte tokenizer makes long descriptions costly.
    gt = tmp_path / "diffmcq_head.jsonl"
    lines = (small_synthkitchen / "diffmcq_test.jsonl").read_text().splitlines(keepends=True)
    gt.write_text("".join(lines[:4]))
    videos = small_synthkitchen / "videos"
    path = run_predictions("diffmcq", gt, videos, scorer, tmp_path / "run", show_progress=False)
    rows = [json.loads(line)["scores"] for line in path.read_text().splitlines()]
    assert len(rows) == 4
    # The options' clips have different descriptions, so their likelihoods differ.
    assert all(len(set(row)) > 1 for row in rows)
    with pytest.raises(ConfigError, match="needs --clips"):
        build_scorer("socratic-oracle", ScorerOptions(ModelOptions(config="tiny")))


@pytest.mark.integration
def test_aligned_space_trains_on_the_train_split_and_scores(small_synthkitchen, tmp_path):
    folder = train_aligned_space(
        small_synthkitchen, tmp_path / "head", encoder="tiny", num_frames=4, epochs=300
    )
    space = load_aligned_space(folder, cache=False)
    train = [s for s in load_clips(small_synthkitchen).values() if s.split == "train"]
    clips = [resolve_clip(s.clip_id, small_synthkitchen / "videos") for s in train]
    describe = OracleDescriber.from_file(small_synthkitchen)
    # Fitted on these 30 clips: most retrieve their own description (chance: 1 in 30).
    similarity = space.embed_clips(clips) @ space.embed_texts([describe(c) for c in clips]).T
    hits = (similarity.argmax(dim=1) == torch.arange(len(clips))).float().mean()
    assert hits >= 0.5, hits
    scorer = VLEmbedScorer(space, caption_pool=["a whisk instead of a spoon"])
    assert scorer.p_yes(clips[:1], clips[:1], ["q"]) == pytest.approx([1.0], abs=1e-5)


def test_text_llm_scores_equal_those_of_the_full_logits(tmp_path):
    """The text-only baselines project only the answer positions; their scores must be
    those of every position's logits, and P(YES) the softmax of YES against NO."""
    from stepdiff.baselines.text_llm import TextLLMScorer
    from stepdiff.config import load_config
    from stepdiff.llm.loading import load_frozen_llm
    from stepdiff.model.batching import IGNORE_INDEX

    scorer = TextLLMScorer(load_frozen_llm(load_config("tiny").llm))
    clips = [ClipRef(tmp_path / f"{name}.mp4") for name in "abc"]  # blind: never opened
    questions = ["What differs?", "Same tool? Answer YES or NO.", "Which pan?"]
    answers = ["The pan is red", "YES", "A wok instead of a pan"]
    batch = scorer._batch(clips, clips, questions, answers, padding_side="right")
    with torch.no_grad():
        logits = scorer.llm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    log_probs = torch.log_softmax(logits.logits[:, :-1].float(), dim=-1)  # (B, L-1, V)
    labels = batch.labels[:, 1:]
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = (picked * (labels != IGNORE_INDEX)).sum(dim=1)
    assert scorer.loglik(clips, clips, questions, answers) == pytest.approx(
        expected.tolist(), abs=1e-4
    )
    yes = scorer._answer_scores(clips, clips, questions, ["YES"] * 3, False)[0]
    no = scorer._answer_scores(clips, clips, questions, ["NO"] * 3, False)[0]
    expected_p = torch.softmax(torch.stack([yes, no]), dim=0)[0]
    assert scorer.p_yes(clips, clips, questions) == pytest.approx(expected_p.tolist(), abs=1e-5)
