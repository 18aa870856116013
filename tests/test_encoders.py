"""Frozen frame encoders: shapes, freezing, determinism, loading by path, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from stepdiff.encoders import (
    EfficientNetLiteEncoder,
    FrameEncoder,
    HFVisionEncoder,
    TinyFrameEncoder,
    build_frame_encoder,
)
from stepdiff.errors import ConfigError, ModelLoadError

# Small enough that every model builds and runs in well under a second.
SMALL = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)
SMALL_TEXT = dict(
    hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=99
)
GRID_TOKENS = (32 // 8) ** 2  # P for the small patch models


def _save_models(root: Path) -> dict[str, Path]:
    """Random-init tiny HF models saved with save_pretrained, one folder per kind."""
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        SiglipVisionConfig,
        SiglipVisionModel,
        VideoMAEConfig,
        VideoMAEModel,
        ViTConfig,
        ViTModel,
    )

    torch.manual_seed(0)
    models = {
        "clip-vision": CLIPVisionModel(CLIPVisionConfig(**SMALL)),
        "clip-full": CLIPModel(
            CLIPConfig(
                vision_config=SMALL,
                text_config=SMALL_TEXT,
                projection_dim=16,
                # the tiny vocabulary cannot hold CLIP's default special-token ids
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        ),
        "vit": ViTModel(ViTConfig(**SMALL)),
        "siglip-vision": SiglipVisionModel(SiglipVisionConfig(**SMALL)),
        "videomae": VideoMAEModel(VideoMAEConfig(num_frames=8, tubelet_size=2, **SMALL)),
    }
    folders = {}
    for name, model in models.items():
        folders[name] = root / name
        model.save_pretrained(folders[name])
    return folders


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _save_models(tmp_path_factory.mktemp("hf"))


def _frames(encoder: FrameEncoder, batch: int = 2, num_frames: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    size = encoder.image_size
    return torch.randn(batch, num_frames, 3, size, size, generator=generator)  # (B, F, 3, S, S)


def _assert_frozen(encoder: FrameEncoder) -> None:
    assert not any(param.requires_grad for param in encoder.parameters())
    encoder.train()  # a parent module switching to training must not unfreeze BN/dropout
    assert not encoder.training
    assert not any(module.training for module in encoder.modules())


# --- tiny ---------------------------------------------------------------------------------


def test_tiny_shapes_frozen_deterministic() -> None:
    encoder = TinyFrameEncoder(dim=16, image_size=32, grid=2, seed=0)
    frames = _frames(encoder, batch=3, num_frames=5)
    tokens = encoder(frames)
    assert tokens.shape == (3, *encoder.tokens_shape(5), encoder.dim) == (3, 5, 4, 16)
    assert tokens.dtype == torch.float32 and not tokens.requires_grad
    _assert_frozen(encoder)
    # Same seed -> same weights in a fresh instance; a different seed differs.
    assert torch.equal(TinyFrameEncoder(seed=0)(frames), tokens)
    assert not torch.allclose(TinyFrameEncoder(seed=1)(frames), tokens)
    # Frames are encoded independently: reordering time reorders tokens.
    assert torch.allclose(encoder(frames.flip(1)), tokens.flip(1), atol=1e-6)


def test_tiny_rejects_wrong_frame_shape() -> None:
    encoder = TinyFrameEncoder()
    with pytest.raises(ValueError, match="expects frames"):
        encoder(torch.zeros(1, 2, 3, 64, 64))
    with pytest.raises(ValueError, match="expects frames"):
        encoder(torch.zeros(2, 3, 32, 32))


# --- Hugging Face ----------------------------------------------------------------------------

HF_KINDS = {
    # name: (num_frames, expected (T, P), model_type)
    "clip-vision": (8, (8, GRID_TOKENS), "clip_vision_model"),
    "clip-full": (8, (8, GRID_TOKENS), "clip_vision_model"),
    "vit": (8, (8, GRID_TOKENS), "vit"),
    "siglip-vision": (8, (8, GRID_TOKENS), "siglip_vision_model"),
    "videomae": (8, (4, GRID_TOKENS), "videomae"),
}


@pytest.mark.parametrize("kind", sorted(HF_KINDS))
def test_hf_shapes_frozen_deterministic(hf_folders: dict[str, Path], kind: str) -> None:
    num_frames, expected_tp, model_type = HF_KINDS[kind]
    encoder = build_frame_encoder(str(hf_folders[kind]))
    assert isinstance(encoder, HFVisionEncoder)
    assert encoder.model_type == model_type
    assert encoder.image_size == 32 and encoder.dim == 32
    assert encoder.tokens_shape(num_frames) == expected_tp
    assert encoder.cache_id == f"hf:{hf_folders[kind].resolve()}"
    frames = _frames(encoder, batch=2, num_frames=num_frames)
    tokens = encoder(frames)
    assert tokens.shape == (2, *expected_tp, 32)
    assert tokens.dtype == torch.float32
    _assert_frozen(encoder)
    assert torch.equal(encoder(frames), tokens)
    assert torch.equal(HFVisionEncoder(str(hf_folders[kind]))(frames), tokens)


def test_hf_default_normalisation(hf_folders: dict[str, Path]) -> None:
    clip = HFVisionEncoder(str(hf_folders["clip-vision"]))
    siglip = HFVisionEncoder(str(hf_folders["siglip-vision"]))
    vit = HFVisionEncoder(str(hf_folders["vit"]))
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert siglip.mean == siglip.std == (0.5, 0.5, 0.5)
    assert vit.mean == pytest.approx((0.485, 0.456, 0.406))


def test_hf_reads_preprocessor_config(hf_folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "vit-with-processor"
    shutil.copytree(hf_folders["vit"], folder)
    processor = {
        "image_mean": [0.1, 0.2, 0.3],
        "image_std": [0.4, 0.5, 0.6],
        "size": {"height": 32},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    encoder = HFVisionEncoder(str(folder))
    assert encoder.mean == pytest.approx((0.1, 0.2, 0.3))
    assert encoder.std == pytest.approx((0.4, 0.5, 0.6))


def test_clip_tower_from_full_checkpoint_keeps_its_weights(hf_folders: dict[str, Path]) -> None:
    from transformers import CLIPModel

    encoder = HFVisionEncoder(str(hf_folders["clip-full"]))
    full = CLIPModel.from_pretrained(hf_folders["clip-full"]).eval()
    frames = _frames(encoder, batch=1, num_frames=2)
    with torch.no_grad():
        reference = full.vision_model(pixel_values=frames[0]).last_hidden_state  # (F, 1+P, D)
    # CLS dropped, patch tokens identical: the vision weights were loaded, not random.
    assert torch.allclose(encoder(frames)[0], reference[:, 1:], atol=1e-6)


def test_vit_drops_cls_token(hf_folders: dict[str, Path]) -> None:
    from transformers import ViTModel

    encoder = HFVisionEncoder(str(hf_folders["vit"]))
    model = ViTModel.from_pretrained(hf_folders["vit"]).eval()
    frames = _frames(encoder, batch=1, num_frames=3)
    with torch.no_grad():
        reference = model(pixel_values=frames[0]).last_hidden_state  # (F, 1+P, D)
    assert reference.shape[1] == GRID_TOKENS + 1
    assert torch.allclose(encoder(frames)[0], reference[:, 1:], atol=1e-6)


def test_videomae_needs_its_frame_count(hf_folders: dict[str, Path]) -> None:
    encoder = HFVisionEncoder(str(hf_folders["videomae"]))
    with pytest.raises(ConfigError, match="exactly 8 frames"):
        encoder.tokens_shape(4)
    with pytest.raises(ConfigError, match="exactly 8 frames"):
        encoder(_frames(encoder, batch=1, num_frames=4))
    with pytest.raises(NotImplementedError):
        encoder.encode_images(torch.zeros(1, 3, 32, 32))


def test_hf_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model folder"):
        HFVisionEncoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load"):
        HFVisionEncoder(str(tmp_path / "empty"))


def test_hf_rejects_checkpoint_missing_vision_weights(hf_folders: dict[str, Path]) -> None:
    # A ViT config pointed at CLIP weights would silently run with random weights.
    import shutil

    from transformers import ViTConfig

    folder = hf_folders["vit"].parent / "vit-config-clip-weights"
    shutil.copytree(hf_folders["clip-vision"], folder)
    ViTConfig(**SMALL).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="lacks .* weights"):
        HFVisionEncoder(str(folder))


# --- registry ---------------------------------------------------------------------------------


def test_registry_tiny_specs() -> None:
    assert isinstance(build_frame_encoder("tiny"), TinyFrameEncoder)
    encoder = build_frame_encoder("tiny:dim=8, grid=3")
    assert (encoder.dim, encoder.tokens_shape(2)) == (8, (2, 9))
    assert encoder.cache_id == TinyFrameEncoder(dim=8, grid=3).cache_id
    for bad in ("tiny:width=8", "tiny:dim=x", "tiny:dim", "tiny:grid=0", ""):
        with pytest.raises(ConfigError):
            build_frame_encoder(bad)


# --- EfficientNet-Lite0 (the real default model) ------------------------------------------------


@pytest.fixture(scope="module")
def efficientnet() -> EfficientNetLiteEncoder:
    encoder = build_frame_encoder("efficientnet-lite0")
    assert isinstance(encoder, EfficientNetLiteEncoder)
    return encoder


@pytest.mark.integration
def test_efficientnet_tokens_on_a_synthetic_clip(
    efficientnet: EfficientNetLiteEncoder, tmp_path: Path
) -> None:
    from stepdiff.video.clip import ClipRef
    from stepdiff.video.decode import read_clip_frames
    from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip
    from stepdiff.video.transforms import frames_to_tensor

    video = write_synthetic_clip(tmp_path / "scene.mp4", SceneSpec(), seconds=2.0, size=128)
    sampled = read_clip_frames(ClipRef(video), num_frames=8)
    pixels = frames_to_tensor(
        sampled.frames, efficientnet.image_size, efficientnet.mean, efficientnet.std
    )  # (F, 3, 224, 224)
    tokens = efficientnet(pixels.unsqueeze(0))
    assert tokens.shape == (1, 8, 49, 1280) and efficientnet.tokens_shape(8) == (8, 49)
    assert torch.isfinite(tokens).all()
    assert efficientnet.cache_id == "efficientnet-lite0"
    _assert_frozen(efficientnet)
    assert torch.equal(efficientnet(pixels.unsqueeze(0)), tokens)

    probs = efficientnet.classify(pixels)
    assert probs.shape == (8, 1000)
    assert torch.allclose(probs.sum(-1), torch.ones(8), atol=1e-5)
    assert (probs >= 0).all()
    assert torch.allclose(efficientnet.classify(pixels.unsqueeze(0)), probs)


def test_efficientnet_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import efficientnet_lite_pytorch` raise ImportError.
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ModelLoadError, match=r"pip install 'stepdiff\[default\]'"):
        EfficientNetLiteEncoder()
