"""VLEmbed: joint-space scoring with a tiny random CLIP and the trained offline alignment head."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from stepdiff.baselines.vlembed import (
    AlignedSpace,
    AlignmentHead,
    HFJointSpace,
    VLEmbedScorer,
    pool_tokens,
    train_alignment_head,
)
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.encoders.tiny import TinyFrameEncoder
from stepdiff.llm.tiny import build_byte_tokenizer
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[ClipRef]:
    folder = tmp_path_factory.mktemp("vlembed")
    scenes = [
        SceneSpec(tool="spoon"),
        SceneSpec(tool="whisk", vessel="pot"),
        SceneSpec(tool="spoon"),
    ]
    return [
        ClipRef(write_synthetic_clip(folder / f"c{i}.mp4", s, seconds=1.0, size=48))
        for i, s in enumerate(scenes)
    ]


@pytest.fixture(scope="module")
def tiny_clip_folder(tmp_path_factory):
    tokenizer = build_byte_tokenizer()
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=64,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_joint_space_scores_pairs(tiny_clip_folder, clips):
    space = HFJointSpace(str(tiny_clip_folder), num_frames=4)
    embedded = space.embed_clips(clips)
    assert embedded.shape == (3, 16)
    torch.testing.assert_close(embedded.norm(dim=-1), torch.ones(3))
    scorer = VLEmbedScorer(
        space, caption_pool=["a whisk instead of a spoon", "a pot instead of a pan"]
    )
    p = scorer.p_yes([clips[0], clips[0]], [clips[2], clips[1]], ["q", "q"])
    # Identical scenes are the most similar: cos = 1 -> P(YES) = 1.
    assert p[0] == pytest.approx(1.0, abs=1e-5) and p[1] < p[0]
    scores = scorer.loglik([clips[0]] * 2, [clips[1]] * 2, ["q"] * 2, ["a whisk", "a pot"])
    pair = torch.nn.functional.normalize(embedded[0] + embedded[1], dim=0)
    expected = (space.embed_texts(["a whisk", "a pot"]) @ pair).tolist()
    assert scores == pytest.approx(expected, abs=1e-5)
    assert scorer.generate([clips[0]], [clips[1]], ["q"])[0] in scorer.caption_pool


class CountingSpace:
    """A joint space that records which clips it was asked to embed."""

    def __init__(self) -> None:
        self.asked: list[ClipRef] = []

    def embed_clips(self, clips):
        self.asked.extend(clips)
        return torch.nn.functional.normalize(torch.randn(len(clips), 4), dim=-1)

    def embed_texts(self, texts):
        return torch.nn.functional.normalize(torch.ones(len(texts), 4), dim=-1)


def test_each_clip_is_embedded_once_per_scorer(clips):
    space = CountingSpace()
    scorer = VLEmbedScorer(space)
    first = scorer.p_yes([clips[0]] * 3, clips, ["q"] * 3)
    again = scorer.p_yes([clips[0]] * 3, clips, ["q"] * 3)
    assert sorted(str(c) for c in space.asked) == sorted(str(c) for c in clips)
    assert first == again and first[0] == pytest.approx(1.0, abs=1e-6)


def test_alignment_head_learns_to_retrieve_descriptions(tmp_path):
    generator = torch.Generator().manual_seed(0)
    pooled = torch.randn(24, 40, generator=generator)
    texts = torch.nn.functional.normalize(torch.randn(24, 12, generator=generator), dim=-1)
    head = train_alignment_head(pooled, texts, epochs=150)
    retrieved = (head(pooled) @ texts.T).argmax(dim=1)
    assert (retrieved == torch.arange(24)).float().mean() == 1.0
    head.save(tmp_path, encoder="tiny", text_embedder="fake", num_frames=4)
    loaded, meta = AlignmentHead.load(tmp_path)
    assert meta["encoder"] == "tiny"
    torch.testing.assert_close(loaded(pooled), head(pooled))


def test_aligned_space_uses_pooled_encoder_tokens(clips):
    featurizer = ClipFeaturizer(TinyFrameEncoder(), num_frames=4)
    head = AlignmentHead(16, 8)

    def fake_text_embedder(texts):
        return torch.nn.functional.normalize(torch.ones(len(texts), 8), dim=-1)

    space = AlignedSpace(featurizer, head, fake_text_embedder)
    expected = head(pool_tokens(featurizer(clips[:1])))
    torch.testing.assert_close(space.embed_clips(clips[:1]), expected)
