"""Per-clip sources (transcripts, captions), interleaved windows and the stats report
on hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepdiff.datagen.interleaved import (
    DESCRIBE_QUESTION,
    interleaved_windows,
    single_video_records,
)
from stepdiff.datagen.records import read_clip_list
from stepdiff.datagen.sources import FrameCaptioner, transcript_narration
from stepdiff.datagen.stats import collect_stats, stats_markdown
from stepdiff.errors import DataFormatError, ModelLoadError
from stepdiff.synthkitchen.builder import SIZES, sample_clips
from stepdiff.video.clip import ClipRef

# --- transcripts -----------------------------------------------------------------------


def test_synthkitchen_transcripts_attribute_sentences_to_clips(tmp_path):
    sentences = [
        {"start": 0.5, "end": 3.7, "clip_id": "v_0.5_3.0", "text": "First I pour batter."},
        {"start": 3.8, "end": 5.7, "clip_id": "v_0.5_3.0", "text": "It looks golden now."},
        {"start": 6.0, "end": 8.0, "clip_id": "v_6.0_8.5", "text": "Then I flip it."},
    ]
    (tmp_path / "v.json").write_text(json.dumps({"sentences": sentences}))
    issues: list[str] = []
    clip = ClipRef(tmp_path / "v.mp4", 0.5, 3.0)
    # The cook keeps talking about the step after its segment ends: both sentences.
    assert transcript_narration(clip, "v_0.5_3.0", issues) == (
        "First I pour batter. It looks golden now."
    )
    (tmp_path / "w.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:03.000\nWhisk until smooth.\n")
    assert transcript_narration(ClipRef(tmp_path / "w.mp4", 2.0, 4.0), "w_2_4", issues) == (
        "Whisk until smooth."
    )
    assert transcript_narration(ClipRef(tmp_path / "x.mp4", 0, 1), "x_0_1", issues) == ""
    (tmp_path / "y.json").write_text("{not json")
    assert transcript_narration(ClipRef(tmp_path / "y.mp4", 0, 1), "y_0_1", issues) == ""
    assert issues == ["no_transcript", "transcript_malformed"]


def test_clip_lists_name_the_bad_line(tmp_path):
    path = tmp_path / "clips.jsonl"
    path.write_text('{"clip_id": "v_0_1", "keystep": "stir"}\n{"clip_id": "v_1", "keystep": "x"}\n')
    with pytest.raises(DataFormatError, match=r"clips.jsonl:2: field 'clip_id'"):
        read_clip_list(path)
    path.write_text('{"clip_id": "v_0_1", "keystep": "stir"}\n')
    with pytest.raises(DataFormatError, match="no clips of split 'train'"):
        read_clip_list(path, "train")


# --- captions --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight ViT + GPT-2 VisionEncoderDecoder saved as a local model folder."""
    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessorPil,
        ViTModel,
    )

    from stepdiff.llm.tiny import build_byte_tokenizer

    folder = tmp_path_factory.mktemp("tiny_captioner")
    tokenizer = build_byte_tokenizer()
    torch.manual_seed(0)
    vit = ViTConfig(
        image_size=32, patch_size=16, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32,
    )  # fmt: skip
    gpt = GPT2Config(
        vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=64,
        add_cross_attention=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = VisionEncoderDecoderModel(encoder=ViTModel(vit), decoder=GPT2LMHeadModel(gpt))
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_local_captioning_model_captions_the_middle_frame(tiny_captioner, synthetic_clip_path):
    clip = ClipRef(synthetic_clip_path, 0.5, 3.0)
    captions = FrameCaptioner(str(tiny_captioner), max_new_tokens=4)(clip)
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_a_captioner_that_cannot_load_fails_once_with_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="captioner .*cannot load") as error:
        FrameCaptioner(str(tmp_path / "nothing-here")).load()
    assert len(str(error.value).splitlines()) == 1


# --- interleaved and single-video data -------------------------------------------------


def test_interleaved_windows_need_two_consecutive_narrated_clips():
    narrations = {
        "v_20_25": "Then flip.",
        "v_0_5": "First pour.",
        "v_10_15": "",
        "v_30_35": "Serve.",
    }
    windows = interleaved_windows("v", narrations)
    assert [(w.clips, w.narrations) for w in windows] == [
        (["v_20_25", "v_30_35"], ["Then flip.", "Serve."])
    ]


def test_single_video_records_carry_description_keystep_and_ground_truth():
    spec = next(c for c in sample_clips(SIZES["small"], seed=0) if c.split == "train")
    description = {
        "clip_id": spec.clip_id, "video_uid": spec.video_uid, "keystep": spec.keystep,
        "description": "A person stirs onions.",
    }  # fmt: skip
    records = single_video_records(description, spec)
    assert (records[0].question, records[0].answer) == (DESCRIBE_QUESTION, "A person stirs onions.")
    assert records[1].answer == f"The step is: {spec.keystep}."
    tool = next(r for r in records if r.question == "Which tool does the person use?")
    assert spec.tool.split()[0] in tool.answer.lower() and tool.source == "metadata"
    assert len(single_video_records({**description, "description": None}, None)) == 1


# --- stats -----------------------------------------------------------------------------


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_stats_on_a_hand_made_case(tmp_path):
    sources = {"tags": [["wok", 0.5]], "captions": [], "narration": "I stir.", "metadata": ""}
    _write(tmp_path / "descriptions.jsonl", [
        {"clip_id": "a_0_1", "video_uid": "a", "keystep": "stir", "description": "one two three",
         "sources": sources, "model": "m"},
        {"clip_id": "b_0_1", "video_uid": "b", "keystep": "stir", "description": "one two",
         "sources": {**sources, "narration": ""}, "model": "m"},
        {"clip_id": "c_0_1", "video_uid": "c", "keystep": "stir", "description": None,
         "sources": {**sources, "tags": []}, "model": "m"},
    ])  # fmt: skip
    (tmp_path / "describe_report.json").write_text(json.dumps({
        "counts": {"described": 2, "failed: description reply is empty": 1,
                   "issue: narration_empty": 1},
        "items": 3, "item_seconds": 1.5, "setup_seconds": 2.0, "wall_seconds": 4.0,
    }))  # fmt: skip
    _write(tmp_path / "pairs.jsonl", [
        {"pair_id": "a_0_1|b_0_1", "reference": "a_0_1", "candidate": "b_0_1",
         "keystep": "stir", "similarity": 0.6},
        {"pair_id": "b_0_1|c_0_1", "reference": "b_0_1", "candidate": "c_0_1",
         "keystep": "stir", "similarity": 0.8},
    ])  # fmt: skip
    qa = [{"question": "Did both use the same tool?", "answer": "No, a wok and a pan."}]
    _write(tmp_path / "qa_raw.jsonl", [
        {"pair_id": "a_0_1|b_0_1", "reference": "a_0_1", "candidate": "b_0_1", "qa": qa * 3,
         "raw": "", "error": None, "model": "m"},
        {"pair_id": "b_0_1|c_0_1", "reference": "b_0_1", "candidate": "c_0_1", "qa": [],
         "raw": "", "error": "QA reply is empty", "model": "m"},
    ])  # fmt: skip
    kept = [
        ("What is the main difference in ingredients between the videos?", "Eggs."),
        ("Did both videos use the same tool?", "No."),
    ]
    _write(tmp_path / "qa.jsonl", [
        {"pair_id": "a_0_1|b_0_1", "keystep": "stir", "question": q, "answer": a}
        for q, a in kept
    ])  # fmt: skip
    (tmp_path / "filter_report.json").write_text(json.dumps({
        "config": {"filter": True},
        "counts": {"qa_in": 3, "kept": 2, "dropped: duplicate": 1},
    }))  # fmt: skip
    stats = collect_stats(tmp_path)
    assert stats["clips"] == 3
    assert stats["descriptions"] | {"words": None, "models": None} == {
        "total": 3, "ok": 2, "failed": 1,
        "failure_reasons": {"description reply is empty": 1},
        "source_issues": {"narration_empty": 1},
        "with_narration": 2, "with_tags": 2, "with_captions": 0, "words": None, "models": None,
    }  # fmt: skip
    assert stats["descriptions"]["words"] == {"min": 2.0, "mean": 2.5, "max": 3.0}
    assert stats["pairs"] | {"similarity": None} == {
        "total": 2, "per_keystep": {"stir": 2}, "similarity": None, "clips_paired": 3,
        "max_pairs_per_clip": 2,
    }  # fmt: skip
    assert stats["pairs"]["similarity"] == {"min": 0.6, "mean": 0.7, "max": 0.8}
    assert stats["qa_raw"] == {
        "pairs": 2, "parsed": 1, "unparsed": 1, "error_reasons": {"QA reply is empty": 1},
        "qa": 3, "models": {"m": 2}, "replies_given_the_follow_up": 0,
        "completed_by_the_follow_up": 0, "replies_with_fewer_qa": 0,
        "near_duplicate_qa_pairs": 3,  # the same QA three times
        "qa_with_swapped_roles": 0, "replies_with_swapped_roles": 0,
    }  # fmt: skip
    assert stats["qa"]["total"] == 2 and stats["qa"]["pairs_with_qa"] == 1
    assert stats["qa"]["per_category"]["Ingredients"] == 1
    assert stats["qa"]["per_category"]["Tools/Equipment"] == 1
    assert stats["filter"] == {
        "enabled": True, "qa_in": 3, "kept": 2, "keep_rate": 0.6667,
        "dropped": {"duplicate": 1},
    }  # fmt: skip
    assert stats["timings"]["describe"]["wall_seconds"] == 4.0
    assert "| kept | 2 |" in stats_markdown(stats)
    # With the filter's list of dropped QA, the reasons per category.
    _write(tmp_path / "qa_dropped.jsonl", [
        {"qa_id": "a_0_1|b_0_1#2", "pair_id": "a_0_1|b_0_1", "reason": "dropped: duplicate",
         "question": "Did both use the same tool?", "answer": "No, a wok and a pan."},
        {"qa_id": "x#0", "pair_id": "x", "reason": "dropped: swapped_roles",
         "question": "Which ingredient differs?", "answer": "Eggs in video 1."},
        {"qa_id": "x#1", "pair_id": "x", "reason": "dropped: duplicate",
         "question": "Which tool is used?", "answer": "A pan."},
    ])  # fmt: skip
    per_category = collect_stats(tmp_path)["filter"]["dropped_per_category"]
    assert per_category == {
        "Ingredients": {"swapped_roles": 1},
        "Tools/Equipment": {"duplicate": 2},
    }
    markdown = stats_markdown(collect_stats(tmp_path))
    assert "| category | duplicate | swapped_roles |" in markdown
    assert "| Tools/Equipment | 2 | 0 |" in markdown
