"""Word grounding: vocabulary and targets from clip texts, the loss, and a training run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from stepdiff.errors import ConfigError
from stepdiff.train.config import load_train_config
from stepdiff.train.data import TrainingRecord
from stepdiff.train.grounding import build_word_grounding, clip_texts, grounding_loss
from stepdiff.train.trainer import train


class WordTokenizer:
    """One token per whitespace-separated piece; ids in order of first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [self.ids.setdefault(w, len(self.ids)) for w in text.split()]}

    def decode(self, ids: list[int]) -> str:
        words = {i: w for w, i in self.ids.items()}
        return " ".join(words[i] for i in ids)


def test_clip_texts_come_from_single_video_answers_and_narrations_not_pairs():
    records = [
        TrainingRecord("single_video", ("a",), "Which tool?", "A whisk."),
        TrainingRecord("interleaved", ("a", "b"), narrations=("I whisk.", "I stir.")),
        TrainingRecord("pair_qa", ("a", "c"), "Difference?", "A fork instead of a whisk."),
    ]
    assert clip_texts(records) == {"a": ["A whisk.", "I whisk."], "b": ["I stir."]}


def test_vocabulary_is_the_words_and_targets_skip_words_most_clips_share():
    tokenizer = WordTokenizer()
    texts = {
        "a": ["the steel whisk"],
        "b": ["the wooden whisk"],
        "c": ["The steel spoon, 3"],
        "d": ["the blue spoon"],
    }
    grounding = build_word_grounding(tokenizer, texts, max_clip_fraction=0.5)
    spelled = [tokenizer.decode([t]) for t in grounding.vocabulary]
    assert spelled == ["the", "steel", "whisk", "wooden", "spoon", "blue"]  # not "3"
    # "the" is in all four clips' texts (more than half): no clip's target.
    named = {c: [spelled[i] for i in t] for c, t in grounding.targets.items()}
    assert named == {
        "a": ["steel", "whisk"],
        "b": ["whisk", "wooden"],
        "c": ["steel", "spoon"],
        "d": ["spoon", "blue"],
    }
    assert grounding.targets_of(["d", "unknown"]) == [grounding.targets["d"], ()]
    # A started projector's vocabulary is kept; words outside it are no targets.
    kept = build_word_grounding(
        tokenizer, texts, vocabulary=grounding.vocabulary[:3], max_clip_fraction=0.5
    )
    assert kept.targets["a"] == (1, 2) and kept.targets["d"] == ()


def test_grounding_loss_takes_each_words_best_video_token():
    probs = torch.tensor(
        [
            [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],  # video 0: token 0 says word 0, token 1 word 2
            [[0.3, 0.3, 0.4], [0.5, 0.25, 0.25]],
        ]
    )  # (B=2, N=2, K=3)
    loss = grounding_loss(probs.log(), [(0, 2), (1,)])
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.3)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert grounding_loss(probs.log(), [(), ()]).item() == 0.0


def _grounding_config(tmp_path: Path, benchmark: Path, *extra: str):
    clips = [json.loads(line) for line in (benchmark / "clips.jsonl").read_text().splitlines()]
    train_clips = [c for c in clips if c["split"] == "train"][:8]
    rows = [
        {
            "clips": [a["clip_id"], b["clip_id"]],
            "narrations": [
                f"I {a['keystep']} {a['ingredient']} with a {a['tool']}.",
                f"I {b['keystep']} {b['ingredient']} with a {b['tool']}.",
            ],
        }
        for a, b in zip(train_clips[::2], train_clips[1::2], strict=True)
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "interleaved.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        f"out={tmp_path / 'run'}",
        "data.pair_qa=[]",
        f"data.interleaved={tmp_path / 'interleaved.jsonl'}",
        "data.mix={interleaved: 1.0}",
        f"data.video_dir={benchmark / 'videos'}",
        "model_overrides=[projector.output_head=words]",
        "tensorboard=false",
        *extra,
    ]
    return load_train_config("tiny", overrides)


def test_grounding_alone_trains_the_words_head_and_resumes_exactly(tmp_path, small_synthkitchen):
    extra = ("answer_weight=0", "grounding_weight=1", "max_steps=30", "optim.lr=0.01")
    whole = _grounding_config(tmp_path / "a", small_synthkitchen, *extra)
    assert (
        whole.fingerprint() != _grounding_config(tmp_path / "c", small_synthkitchen).fingerprint()
    )
    result = train(whole, show_progress=False)
    assert sum(result.losses[-5:]) / 5 < 0.7 * sum(result.losses[:5]) / 5
    from stepdiff.model.build import load_model

    model = load_model(result.model_dir)
    # The vocabulary is saved with the weights: each narration word's first token, which
    # for the tiny LLM's byte tokenizer is the word's first letter, lower-cased.
    rows = (tmp_path / "a" / "interleaved.jsonl").read_text().splitlines()
    narrations = " ".join(n for line in rows for n in json.loads(line)["narrations"])
    letters = {word[0] for word in re.findall(r"[a-z]+", narrations.lower())}
    expected = sorted(model.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in letters)
    assert model.projector_module.word_ids.tolist() == expected
    split = _grounding_config(tmp_path / "b", small_synthkitchen, *extra)
    train(split, show_progress=False, stop_after=19)  # a crash after step 19: resume from 18
    assert train(split, show_progress=False).losses == result.losses[18:]


def test_grounding_needs_the_words_head_and_clip_texts(tmp_path, small_synthkitchen):
    linear = _grounding_config(
        tmp_path / "a", small_synthkitchen, "grounding_weight=1", "model_overrides=[]"
    )
    with pytest.raises(ConfigError, match="projector.output_head=words"):
        train(linear, show_progress=False)
    from train_data import write_pair_qa

    qa = write_pair_qa(small_synthkitchen, tmp_path)
    pairs_only = _grounding_config(
        tmp_path / "b",
        small_synthkitchen,
        "grounding_weight=1",
        f"data.pair_qa={qa}",
        "data.mix={pair_qa: 1.0}",
    )
    with pytest.raises(ConfigError, match="texts about single clips"):
        train(pairs_only, show_progress=False)
    with pytest.raises(ConfigError, match="are all 0"):
        _grounding_config(tmp_path / "c", small_synthkitchen, "answer_weight=0")


def test_a_started_projector_keeps_its_vocabulary_and_pairs_alone_give_one(
    tmp_path, small_synthkitchen
):
    from safetensors.torch import load_file
    from train_data import write_pair_qa

    from stepdiff.train.grounding import word_tokens

    stage1 = train(
        _grounding_config(
            tmp_path / "a", small_synthkitchen, "answer_weight=0", "grounding_weight=1"
        ),
        show_progress=False,
    )
    qa = write_pair_qa(small_synthkitchen, tmp_path)
    stage2 = train(
        _grounding_config(
            tmp_path / "b",
            small_synthkitchen,
            "grounding_weight=1",
            f"init_from={stage1.model_dir}",
            f"data.pair_qa={qa}",
            "data.mix={pair_qa: 0.5, interleaved: 0.5}",
            "max_steps=2",
        ),
        show_progress=False,
    )
    first = load_file(stage1.model_dir / "projector.safetensors")["word_ids"]
    assert torch.equal(load_file(stage2.model_dir / "projector.safetensors")["word_ids"], first)
    # From scratch on pair QA only: the words of the answers.
    pairs = train(
        _grounding_config(
            tmp_path / "c",
            small_synthkitchen,
            f"data.pair_qa={qa}",
            "data.mix={pair_qa: 1.0}",
            "max_steps=1",
        ),
        show_progress=False,
    )
    from stepdiff.model.build import load_model

    model = load_model(pairs.model_dir)
    answers = [json.loads(line)["answer"] for line in qa.read_text().splitlines()]
    expected = sorted({t for a in answers for t in word_tokens(model.tokenizer, a)})
    assert model.projector_module.word_ids.tolist() == expected
