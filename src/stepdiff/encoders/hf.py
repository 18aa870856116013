"""Any Hugging Face vision backbone as a frozen frame/clip encoder.

Supported families: CLIP and SigLIP (vision tower only, from either a vision-only or a
full image-text checkpoint), ViT-style image transformers, VideoMAE (a clip encoder:
tubelets of frames become one time step), and models whose last hidden state is a
conv feature map ``(N, D, h, w)``. Models load by hub id (when a hub is reachable or
cached) or by local folder; weights are always fp32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import nn

from stepdiff.encoders.base import IMAGENET_MEAN, IMAGENET_STD, FrameEncoder
from stepdiff.errors import ConfigError, ModelLoadError, first_line
from stepdiff.hf_quiet import quiet_transformers

# Full image-text checkpoints whose vision tower loads on its own: loading just the
# tower skips the text weights (half the file for CLIP) and its tokenizer.
VISION_TOWERS: dict[str, str] = {
    "clip": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip2": "Siglip2VisionModel",
}
VIDEO_MODEL_TYPES: frozenset[str] = frozenset({"videomae"})

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
HALF: tuple[float, float, float] = (0.5, 0.5, 0.5)
DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "clip": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "clip_vision_model": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "siglip": (HALF, HALF),
    "siglip_vision_model": (HALF, HALF),
    "siglip2": (HALF, HALF),
    "siglip2_vision_model": (HALF, HALF),
}
DEFAULT_IMAGE_SIZE = 224

# Weights a checkpoint may lack without harming the tokens we read: pooling heads sit
# after last_hidden_state (e.g. ViTForImageClassification checkpoints have no pooler).
_UNUSED_PARTS = frozenset({"pooler", "head"})


def _looks_like_path(spec: str) -> bool:
    return Path(spec).expanduser().exists() or spec.startswith(("/", "./", "../", "~", "\\"))


def _triple(value: Any, fallback: tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return (float(value),) * 3
    if isinstance(value, list | tuple) and len(value) == 3:
        return (float(value[0]), float(value[1]), float(value[2]))
    return fallback


def square_side(value: Any) -> int | None:
    """A square side from a config/processor size: int, (h, w) or a size dict."""
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, dict):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(value.get(key), int):
                return int(value[key])
    return None


def read_preprocessor_config(source: str) -> dict[str, Any]:
    """The folder's/repo's preprocessor_config.json as a dict ({} when it has none).

    Read as JSON rather than through AutoImageProcessor: only mean, std and size are
    needed, and building the processor can require optional packages (PIL, torchvision).
    """
    from transformers.utils import cached_file

    try:
        resolved = cached_file(
            source,
            "preprocessor_config.json",
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except Exception:  # no hub, gated repo...: fall back to the config's defaults
        return {}
    if resolved is None:
        return {}
    try:
        return dict(json.loads(Path(resolved).read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{resolved}: unreadable preprocessor config ({error})") from None


def _load_model(source: str, spec: str) -> tuple[nn.Module, Any]:
    """Load the vision model (tower) in fp32; returns (model, its config)."""
    import transformers
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(source)
        tower_name = VISION_TOWERS.get(config.model_type)
        model_class = getattr(transformers, tower_name) if tower_name else AutoModel
        with quiet_transformers():
            model, info = model_class.from_pretrained(
                source, dtype=torch.float32, output_loading_info=True
            )
    except Exception as error:  # OSError, ValueError, KeyError...: all reported as one line
        hint = "; offline? use a local model folder" if "connect" in str(error) else ""
        raise ModelLoadError(
            f"vision encoder {spec!r}: cannot load ({first_line(error)}){hint}"
        ) from None
    missing = sorted(
        key
        for key in info.get("missing_keys", ())
        if not set(key.split(".")).intersection(_UNUSED_PARTS)
    )
    if missing:
        # Random weights in a frozen encoder would silently produce useless features.
        raise ModelLoadError(
            f"vision encoder {spec!r}: checkpoint lacks {len(missing)} weights of "
            f"{type(model).__name__} (e.g. {missing[0]}); is it a vision model?"
        )
    # The loaded model's own config: for a tower this is the vision config.
    config = model.config
    # Other dual encoders (AutoModel gave the full model): keep the vision tower only.
    if hasattr(config, "vision_config") and hasattr(model, "vision_model"):
        model = model.vision_model
        config = config.vision_config
    return model, config


class HFVisionEncoder(FrameEncoder):
    """A Hugging Face vision model (hub id or local folder) producing patch tokens.

    Image models: tokens ``(B, F, P, D)`` with ``P = (S / patch)^2`` (CLS, distillation
    and register tokens are dropped) or ``P = h * w`` for conv feature maps.
    VideoMAE: tokens ``(B, F // tubelet, P, D)``; ``F`` must equal the model's
    ``num_frames`` because its position embeddings are fixed.
    """

    def __init__(self, model_id_or_path: str) -> None:
        super().__init__()
        spec = str(model_id_or_path)
        is_path = _looks_like_path(spec)
        if is_path:
            folder = Path(spec).expanduser()
            if not folder.is_dir():
                raise ModelLoadError(f"vision encoder {spec!r}: no such model folder")
            source = str(folder.resolve())
        else:
            source = spec
        self.model, config = _load_model(source, spec)
        self.model_type: str = str(config.model_type)
        self.cache_id = f"hf:{source}"

        processor = read_preprocessor_config(source)
        default_mean, default_std = DEFAULT_NORMALISATION.get(
            self.model_type, (IMAGENET_MEAN, IMAGENET_STD)
        )
        self.mean = _triple(processor.get("image_mean"), default_mean)
        self.std = _triple(processor.get("image_std"), default_std)
        # The config's image_size wins: absolute position embeddings are built for it.
        self.image_size = (
            square_side(getattr(config, "image_size", None))
            or square_side(processor.get("crop_size"))
            or square_side(processor.get("size"))
            or DEFAULT_IMAGE_SIZE
        )

        self.is_video = self.model_type in VIDEO_MODEL_TYPES
        self.tubelet = int(getattr(config, "tubelet_size", 1)) if self.is_video else 1
        self.model_frames: int | None = (
            int(config.num_frames) if self.is_video and hasattr(config, "num_frames") else None
        )
        patch = square_side(getattr(config, "patch_size", None))
        # Patch transformers: P from the grid. Anything else: learn P and D from a probe.
        self.patch_tokens: int | None = (self.image_size // patch) ** 2 if patch else None
        hidden = getattr(config, "hidden_size", None)
        if self.patch_tokens is not None and isinstance(hidden, int):
            self.tokens_per_frame, self.dim = self.patch_tokens, hidden
        else:
            self.tokens_per_frame, self.dim = self._probe()
        self.freeze()

    def _probe(self) -> tuple[int, int]:
        """(P, D) from one forward pass on a blank input (models without patch_size)."""
        frames = self.model_frames or 1
        blank = torch.zeros(1, frames, 3, self.image_size, self.image_size)
        tokens = self._encode(blank) if self.is_video else self._encode_images(blank[:, 0])
        return int(tokens.shape[-2]), int(tokens.shape[-1])

    def tokens_shape(self, num_frames: int) -> tuple[int, int]:
        """``(T, P)``: ``T = num_frames`` (image models) or ``num_frames // tubelet``."""
        if not self.is_video:
            return num_frames, self.tokens_per_frame
        self._check_video_frames(num_frames)
        return num_frames // self.tubelet, self.tokens_per_frame

    def _check_video_frames(self, num_frames: int) -> None:
        if self.model_frames is not None and num_frames != self.model_frames:
            raise ConfigError(
                f"num_frames: {self.cache_id} ({self.model_type}) takes exactly "
                f"{self.model_frames} frames per clip, got {num_frames}"
            )
        if num_frames % self.tubelet:
            raise ConfigError(
                f"num_frames: {num_frames} is not a multiple of the tubelet size {self.tubelet}"
            )

    def _hidden(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).last_hidden_state

    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self._hidden(images)  # (N, L, D) tokens or (N, D, h, w) feature map
        if hidden.ndim == 4:
            return rearrange(hidden, "n d h w -> n (h w) d")  # (N, P, D)
        if self.patch_tokens is None:
            return hidden
        prefix = hidden.shape[1] - self.patch_tokens
        if prefix < 0:
            raise RuntimeError(
                f"{self.cache_id}: {hidden.shape[1]} tokens for {self.patch_tokens} patches"
            )
        # CLS / distillation / register tokens come first in HF ViT-style models.
        return hidden[:, prefix:]  # (N, P, D)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, P, D)`` patch tokens (image models only)."""
        if self.is_video:
            raise NotImplementedError(f"{self.cache_id} encodes clips, not single images")
        return self._encode_images(images)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """VideoMAE: ``(B, F, 3, S, S)`` -> ``(B, F // tubelet, P, D)``."""
        hidden = self._hidden(frames)  # (B, T*P, D), ordered time-major by the 3D patcher
        steps = frames.shape[1] // self.tubelet
        return rearrange(hidden, "b (t p) d -> b t p d", t=steps)  # (B, T, P, D)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode clips ``(B, F, 3, S, S)`` into tokens ``(B, T, P, D)``."""
        if not self.is_video:
            return super().forward(frames)
        self.check_frames(frames)
        self._check_video_frames(frames.shape[1])
        with torch.no_grad():
            return self._encode(frames)
