"""A tiny random-init conv encoder for tests and smoke runs (no weights to load)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stepdiff.encoders.base import FrameEncoder


class TinyFrameEncoder(FrameEncoder):
    """Two stride-2 convolutions and an adaptive pool to a ``grid x grid`` token map.

    Weights are drawn from a private generator seeded with ``seed``, so two encoders
    built with the same arguments are identical in any process (the feature cache
    relies on that through :attr:`cache_id`). Tokens: ``(B, F, grid*grid, dim)``.
    """

    def __init__(self, dim: int = 16, image_size: int = 32, grid: int = 2, seed: int = 0) -> None:
        super().__init__()
        if dim < 1 or grid < 1 or image_size < 4 * grid:
            raise ValueError(
                f"TinyFrameEncoder needs dim >= 1, grid >= 1 and image_size >= 4*grid, got "
                f"dim={dim}, grid={grid}, image_size={image_size}"
            )
        self.dim = dim
        self.image_size = image_size
        self.grid = grid
        self.tokens_per_frame = grid * grid
        self.mean = (0.5, 0.5, 0.5)
        self.std = (0.5, 0.5, 0.5)
        self.cache_id = f"tiny:dim={dim},grid={grid},image_size={image_size},seed={seed}"
        hidden = max(8, dim // 2)
        self.net = nn.Sequential(
            nn.Conv2d(3, hidden, kernel_size=3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, dim, kernel_size=3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(grid),
        )
        # Initialise from a local generator: independent of (and not disturbing) the
        # global RNG, so the weights depend on the seed alone.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in self.net.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
        self.freeze()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, grid*grid, dim)``."""
        feature_map = self.net(images)  # (N, D, grid, grid)
        return rearrange(feature_map, "n d h w -> n (h w) d")  # (N, P, D)
