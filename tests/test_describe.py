"""The description-alignment loss: SynthKitchen's structured descriptions, their slot
layout, the words head's loss, and a training run that uses no LLM pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_words import WordTokenizer

from stepdiff.data.categories import CATEGORIES
from stepdiff.data.descriptions import joined_description, separators
from stepdiff.errors import ConfigError, DataFormatError
from stepdiff.synthkitchen.builder import load_clips
from stepdiff.synthkitchen.descriptions import description_fields
from stepdiff.train.config import load_train_config
from stepdiff.train.data import TrainingRecord, read_training_records
from stepdiff.train.describe import (
    check_slots,
    field_tokens,
    slot_layout,
    slot_vocabulary,
)
from stepdiff.train.trainer import train


class SpaceTokenizer(WordTokenizer):
    """One token per word, and the space alone is a token too (as in the real LLMs)."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        if text == " ":
            return {"input_ids": [self.ids.setdefault("<space>", len(self.ids))]}
        return super().__call__(text, add_special_tokens)


def described(*fields: tuple[str, ...]) -> list[TrainingRecord]:
    return [
        TrainingRecord("descriptions", (f"c{i}",), fields=f, source=f"d.jsonl:{i + 1}")
        for i, f in enumerate(fields)
    ]


def test_each_field_takes_its_widest_tokenisation_and_pads_with_a_space():
    tokenizer = SpaceTokenizer()
    records = described(("stir", "a whisk"), ("fry", "one steel spatula"))
    layout = slot_layout(tokenizer, records)
    assert layout.widths == (1, 3) and layout.slots == 4
    pad = layout.pad_id
    spell = tokenizer.decode
    assert spell(layout.targets(tokenizer, records[0].fields)[:3]) == "stir a whisk"
    assert layout.targets(tokenizer, records[0].fields)[3] == pad
    assert spell(layout.targets(tokenizer, records[1].fields)) == "fry one steel spatula"
    vocabulary = slot_vocabulary(tokenizer, layout, records)
    assert {spell([t]) for t in vocabulary - {pad}} == {
        "stir",
        "a",
        "whisk",
        "fry",
        "one",
        "steel",
        "spatula",
    }


def test_layouts_refuse_ragged_descriptions_and_a_wrong_number_of_latents():
    tokenizer = SpaceTokenizer()
    with pytest.raises(DataFormatError, match=r"same number of fields \(found \[1, 2\]"):
        slot_layout(tokenizer, described(("stir",), ("fry", "a whisk")))
    layout = slot_layout(tokenizer, described(("stir", "a whisk")))
    with pytest.raises(ConfigError, match=r"3 video-token slots .* projector.num_latents=3"):
        check_slots(layout, 8)
    check_slots(layout, 3)


def test_the_words_loss_is_the_cross_entropy_of_each_slots_token():
    from stepdiff.config import load_config
    from stepdiff.model import build_model

    model = build_model(load_config("tiny", ["projector.output_head=words"]))
    words = model.projector_module.components["words"]
    words.set_vocabulary([5, 9, 12])
    # Two slots: uniform over the 3 words, then certain of word 12.
    scores = torch.log(torch.tensor([[[1 / 3, 1 / 3, 1 / 3], [1e-9, 1e-9, 1.0]]]))
    loss = words.loss(scores, torch.tensor([[9, 12]]))
    assert float(loss) == pytest.approx(math.log(3) / 2, rel=1e-4)
    with pytest.raises(ValueError, match="not in the words head's vocabulary"):
        words.loss(scores, torch.tensor([[9, 7]]))


def test_description_records_read_fields_or_one_free_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"clip_id": "a_0_1", "fields": ["stir", "a whisk"]})
        + "\n"
        + json.dumps({"clip_id": "b_0_1", "description": "A cook stirs."})
        + "\n"
    )
    first, second = read_training_records("descriptions", [path])
    assert first.clips == ("a_0_1",) and first.fields == ("stir", "a whisk")
    assert second.fields == ("A cook stirs.",)
    path.write_text(json.dumps({"clip_id": "a_0_1", "fields": [" stir ", "\nTools: a \n"]}))
    (record,) = read_training_records("descriptions", [path])
    assert record.fields == ("stir", "\nTools: a")  # a line's start survives, spaces do not
    path.write_text(json.dumps({"clip_id": "a_0_1", "fields": []}) + "\n")
    with pytest.raises(DataFormatError, match=r"d.jsonl:1: field 'fields' must be a non-empty"):
        read_training_records("descriptions", [path])


def test_synthkitchen_writes_each_training_clips_structured_description(small_synthkitchen):
    rows = [
        json.loads(line)
        for line in (small_synthkitchen / "descriptions_train.jsonl").read_text().splitlines()
    ]
    clips = load_clips(small_synthkitchen)
    train_clips = [c for c in clips.values() if c.split == "train"]
    assert [r["clip_id"] for r in rows] == [c.clip_id for c in train_clips]
    spec = train_clips[0]
    fields = description_fields(spec)
    assert rows[0]["fields"] == fields and len(fields) == 16
    assert fields[0] == f"Step: {spec.keystep}." and fields[5] == f"{spec.tool},"
    lines = joined_description(fields).split("\n")
    assert [line.split(":")[0] for line in lines] == ["Step", *CATEGORIES]
    assert lines[2] == (
        f"Tools/Equipment: {spec.tool_color} {spec.tool}, {spec.vessel_material} {spec.vessel}."
    )


def test_a_field_that_starts_a_line_takes_no_space_before_it():
    fields = ("Step: stir.", "\nTools: a", "whisk.")
    assert separators(fields) == ["", "", " "]
    assert joined_description(fields) == "Step: stir.\nTools: a whisk."
    asked: list[str] = []

    class RecordingTokenizer(SpaceTokenizer):
        def __call__(self, text: str, add_special_tokens: bool = False):
            asked.append(text)
            return super().__call__(text, add_special_tokens)

    field_tokens(RecordingTokenizer(), fields)
    assert asked == ["Step: stir.", "\nTools: a", " whisk."]  # each as it reads in the text


def _describe_config(tmp_path: Path, benchmark: Path, *extra: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    descriptions = tmp_path / "tools.jsonl"
    clips = load_clips(benchmark)
    descriptions.write_text(
        "".join(
            json.dumps({"clip_id": c.clip_id, "fields": [c.tool, c.vessel]}) + "\n"
            for c in clips.values()
            if c.split == "train"
        )
    )
    return load_train_config(
        "tiny",
        [
            f"out={tmp_path / 'run'}",
            "data.pair_qa=[]",
            f"data.descriptions={descriptions}",
            "data.mix={descriptions: 1.0}",
            f"data.video_dir={benchmark / 'videos'}",
            "answer_weight=0",
            "describe_weight=1",
            "tensorboard=false",
            *extra,
        ],
    )


def test_description_training_needs_the_words_head_and_the_right_number_of_latents(
    tmp_path, small_synthkitchen
):
    with pytest.raises(ConfigError, match="describe_weight needs the words component"):
        train(_describe_config(tmp_path / "a", small_synthkitchen, "max_steps=1"))
    with pytest.raises(ConfigError, match=r"projector.num_latents=\d+"):
        config = _describe_config(
            tmp_path / "b",
            small_synthkitchen,
            "max_steps=1",
            "model_overrides=[projector.output_head=words]",
        )
        train(config, show_progress=False)
    with pytest.raises(ConfigError, match="set describe_weight > 0"):
        _describe_config(tmp_path / "c", small_synthkitchen, "describe_weight=0", "answer_weight=1")


def test_description_training_teaches_the_slots_without_the_llm(tmp_path, small_synthkitchen):
    """The tiny byte-level tokenizer spells "measuring cup" in 14 slots; with as many
    latents, 40 steps bring the slot loss far below its start."""
    from stepdiff.model.build import load_model

    probe = _describe_config(tmp_path / "probe", small_synthkitchen)
    records = read_training_records("descriptions", probe.data.descriptions)
    from stepdiff.config import load_config
    from stepdiff.model import build_model

    tokenizer = build_model(load_config("tiny")).tokenizer
    slots = slot_layout(tokenizer, records).slots
    config = _describe_config(
        tmp_path,
        small_synthkitchen,
        f"model_overrides=[projector.output_head=words, projector.num_latents={slots}]",
        "max_steps=40",
        "batch_size=16",
        "optim.lr=0.003",
        f"dev.descriptions={probe.data.descriptions[0]}",
        "dev.max_items=16",
    )
    result = train(config, show_progress=False)
    assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5 * 0.5
    # Read back on (training) clips: one slot in K (~30 byte tokens) would be chance.
    assert result.dev["slot_accuracy"] > 0.25, result.dev
    assert 0.1 < result.dev["field_accuracy"] <= 1
    model = load_model(result.model_dir)
    vocabulary = set(model.projector_module.components["words"].word_ids.tolist())
    assert slot_vocabulary(tokenizer, slot_layout(tokenizer, records), records) <= vocabulary
    # Shipped in fp16, the head keeps its token ids (integers an fp16 cast would break).
    from safetensors.torch import load_file

    from stepdiff.model_files import export_model

    folder = export_model(result.model_dir, tmp_path / "shipped")
    assert load_file(folder / "projector.safetensors")["components.words.word_ids"].dtype == (
        torch.int64
    )
    words = load_model(folder).projector_module.components["words"].word_ids
    assert set(words.tolist()) == vocabulary


def test_descriptions_mix_with_pair_qa_whose_answers_alone_reach_the_llm(
    tmp_path, small_synthkitchen
):
    from train_data import write_pair_qa

    from stepdiff.config import load_config
    from stepdiff.model import build_model

    probe = _describe_config(tmp_path / "probe", small_synthkitchen)
    records = read_training_records("descriptions", probe.data.descriptions)
    slots = slot_layout(build_model(load_config("tiny")).tokenizer, records).slots
    qa = write_pair_qa(small_synthkitchen, tmp_path)
    config = _describe_config(
        tmp_path,
        small_synthkitchen,
        f"model_overrides=[projector.output_head=words, projector.num_latents={slots}]",
        f"data.pair_qa={qa}",
        "data.mix={pair_qa: 0.5, descriptions: 0.5}",
        "answer_weight=1",
        "max_steps=4",
    )
    result = train(config, show_progress=False)
    assert len(result.losses) == 4 and all(loss > 0 for loss in result.losses)
