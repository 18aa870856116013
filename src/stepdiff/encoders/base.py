"""The frozen frame/clip encoder interface every vision backbone implements.

Encoders turn normalised frames ``(B, F, 3, S, S)`` into a grid of tokens
``(B, T, P, D)``: ``T`` time steps, ``P`` spatial tokens per step, ``D`` channels.
They are never trained in StepDiff, so the base class freezes them on construction
and keeps them in eval mode even when a parent module is switched to training.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

# Normalisation constants in [0, 1] pixel units, shared by several encoders.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class FrameEncoder(nn.Module):
    """Frozen frame/clip encoder.

    ``forward(frames: (B, F, 3, S, S) float32 normalised) -> (B, T, P, D)`` tokens:
    ``T`` time steps (``T == F`` for image encoders, ``F // tubelet`` for VideoMAE),
    ``P`` spatial tokens per step, ``D`` width.

    Subclasses set the attributes below in ``__init__`` and implement either
    :meth:`encode_images` (image encoders: the base ``forward`` folds time into the
    batch) or override :meth:`forward` and :meth:`tokens_shape` (video encoders).
    They must call :meth:`freeze` at the end of ``__init__``.
    """

    cache_id: str
    """Stable identity for the feature cache, e.g. ``"efficientnet-lite0"``."""
    dim: int
    """Token width ``D``."""
    image_size: int
    """Square input side ``S`` in pixels."""
    mean: tuple[float, float, float]
    """Per-channel RGB mean in [0, 1] units used to normalise input frames."""
    std: tuple[float, float, float]
    """Per-channel RGB std in [0, 1] units used to normalise input frames."""
    tokens_per_frame: int
    """``P`` for image encoders (spatial tokens per time step)."""

    def freeze(self) -> None:
        """Stop gradients to every parameter and switch to eval mode (BatchNorm, dropout)."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrameEncoder:
        # A frozen backbone must stay in eval mode even when the model that owns it
        # calls .train(): BatchNorm would otherwise update its running statistics and
        # dropout would make cached features irreproducible.
        return super().train(False)

    def tokens_shape(self, num_frames: int) -> tuple[int, int]:
        """``(T, P)`` of the tokens produced for a clip of ``num_frames`` frames."""
        return num_frames, self.tokens_per_frame

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Encode independent images ``(N, 3, S, S)`` into tokens ``(N, P, D)``."""
        # Not an abc.abstractmethod: nn.Module is not an ABC, so the decorator would
        # not be enforced anyway; video encoders override forward instead.
        raise NotImplementedError(f"{type(self).__name__} does not encode single images")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode clips ``(B, F, 3, S, S)`` into tokens ``(B, F, P, D)``."""
        self.check_frames(frames)
        batch = frames.shape[0]
        images = rearrange(frames, "b f c h w -> (b f) c h w")  # (B*F, 3, S, S)
        with torch.no_grad():
            # no_grad rather than inference_mode: inference tensors cannot be saved for
            # backward, and these features feed a trained projector.
            tokens = self.encode_images(images)  # (B*F, P, D)
        return rearrange(tokens, "(b f) p d -> b f p d", b=batch)  # (B, T, P, D)

    def check_frames(self, frames: torch.Tensor) -> None:
        """Raise ValueError unless ``frames`` is ``(B, F, 3, S, S)`` for this encoder."""
        expected = (3, self.image_size, self.image_size)
        if frames.ndim != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects frames (B, F, 3, {self.image_size}, "
                f"{self.image_size}), got {tuple(frames.shape)}"
            )

    def extra_repr(self) -> str:
        return f"cache_id={self.cache_id!r}, dim={self.dim}, image_size={self.image_size}"
