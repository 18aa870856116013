"""The words head's vocabulary: from the training texts, kept by a started projector."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from test_train import _interleaved_stage
from train_data import write_pair_qa

from stepdiff.train.data import TrainingRecord
from stepdiff.train.trainer import train
from stepdiff.train.words import record_texts, word_tokens, word_vocabulary

WORDS = "model_overrides=[projector.output_head=words]"


class WordTokenizer:
    """One token per whitespace-separated piece; ids in order of first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [self.ids.setdefault(w, len(self.ids)) for w in text.split()]}

    def decode(self, ids: list[int]) -> str:
        words = {i: w for w, i in self.ids.items()}
        return " ".join(words[i] for i in ids)


def test_texts_are_about_single_clips_and_else_the_pair_answers():
    single = TrainingRecord("single_video", ("a",), "Which tool?", "A whisk.")
    narrated = TrainingRecord("interleaved", ("a", "b"), narrations=("I whisk.", "I stir."))
    pair = TrainingRecord("pair_qa", ("a", "c"), "Difference?", "A fork instead of a whisk.")
    assert record_texts([single, narrated, pair]) == ["A whisk.", "I whisk.", "I stir."]
    assert record_texts([pair]) == ["A fork instead of a whisk."]


def test_the_vocabulary_is_each_words_first_token_sorted():
    tokenizer = WordTokenizer()
    records = [TrainingRecord("single_video", ("a",), "q", "The steel whisk, 3 times")]
    spelled = [tokenizer.decode([t]) for t in word_vocabulary(tokenizer, records)]
    assert spelled == ["the", "steel", "whisk", "times"]  # not "3"


def test_a_started_projector_keeps_its_vocabulary_and_pairs_alone_give_one(
    tmp_path, small_synthkitchen
):
    for folder in ("b", "c"):
        (tmp_path / folder).mkdir()
    stage1 = train(_interleaved_stage(tmp_path, small_synthkitchen, WORDS), show_progress=False)
    first = load_file(stage1.model_dir / "projector.safetensors")["components.words.word_ids"]
    qa = write_pair_qa(small_synthkitchen, tmp_path)
    stage2 = train(
        _interleaved_stage(
            tmp_path / "b",
            small_synthkitchen,
            WORDS,
            f"init_from={stage1.model_dir}",
            f"data.pair_qa={qa}",
            "data.mix={pair_qa: 0.5, interleaved: 0.5}",
        ),
        show_progress=False,
    )
    kept = load_file(stage2.model_dir / "projector.safetensors")["components.words.word_ids"]
    assert torch.equal(kept, first)
    # From scratch on pair QA only: the words of the answers.
    pairs = train(
        _interleaved_stage(
            tmp_path / "c",
            small_synthkitchen,
            WORDS,
            f"data.pair_qa={qa}",
            "data.mix={pair_qa: 1.0}",
        ),
        show_progress=False,
    )
    from stepdiff.model.build import load_model

    model = load_model(pairs.model_dir)
    answers = [json.loads(line)["answer"] for line in qa.read_text().splitlines()]
    expected = sorted({t for a in answers for t in word_tokens(model.tokenizer, a)})
    assert model.projector_module.components["words"].word_ids.tolist() == expected
