"""Turn sampled frames into the normalised tensors that frame encoders take."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

MAX_RESIZE_INPUT_PIXELS = 1920 * 1080
"""Frames bound for :func:`frames_to_tensor` are decoded no larger than this, aspect
kept (``read_clip_frames(..., fit_pixels=MAX_RESIZE_INPUT_PIXELS)``): it converts whole
frames to float32, 12 bytes a pixel, before resizing them, which for eight 8K frames
is 3.2 GB. Frames up to 1080p, the usual case, are converted exactly as decoded."""


def _resized_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to ``image_size``, aspect kept."""
    if height <= width:
        return image_size, max(image_size, round(width * image_size / height))
    return max(image_size, round(height * image_size / width)), image_size


def _check_inputs(
    frames: np.ndarray, image_size: int, mean: Sequence[float], std: Sequence[float]
) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {len(mean)} and {len(std)}")
    if any(s == 0 for s in std):
        raise ValueError(f"std must not contain 0, got {tuple(std)}")


def frames_to_tensor(
    frames: np.ndarray, image_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> (N, 3, image_size, image_size) float32.

    The shorter side is resized to ``image_size`` (bilinear, antialiased, so that
    downscaling large frames does not alias), the centre square is cropped, values are
    scaled to [0, 1] and then normalised per channel: ``(x - mean) / std``.
    """
    _check_inputs(frames, image_size, mean, std)
    count, height, width = frames.shape[:3]
    # uint8 -> float in [0, 1], channels first: (N, 3, H, W).
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    new_height, new_width = _resized_shape(height, width, image_size)
    if count and (new_height, new_width) != (height, width):
        images = F.interpolate(
            images,
            size=(new_height, new_width),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    # Same rounding of the crop offset as torchvision's center_crop, so features match
    # models trained with torchvision preprocessing.
    top = int(round((new_height - image_size) / 2.0))
    left = int(round((new_width - image_size) / 2.0))
    images = images[:, :, top : top + image_size, left : left + image_size]
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((images - mean_t) / std_t).contiguous()
