"""The trainable projector: a Perceiver resampler plus a linear head to the LLM width.

Following the paper (Sec. 3.3) and Flamingo: learned latents cross-attend to the video's
spatio-temporal tokens (with a learned embedding per time step, so frame order matters),
each layer followed by a feed-forward block; the latents are then projected to the LLM's
embedding width, giving a fixed number of tokens per video whatever the encoder.

Shapes: B batch, T time steps, P tokens per step, D encoder width, W projector width,
N latents, H LLM width.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn


@dataclass(frozen=True)
class ProjectorConfig:
    num_latents: int = 32
    depth: int = 2
    width: int = 512
    heads: int = 8
    head_dim: int = 64
    ff_mult: int = 4
    max_time_steps: int = 64
    # Average each frame's P tokens into one before the latents attend: T media tokens
    # whose differences between clips are not diluted by hundreds of background patches.
    pool_frames: bool = False


class PerceiverAttention(nn.Module):
    """Latents attend to [video tokens; latents] (Flamingo's keys include the latents)."""

    def __init__(self, width: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.norm_media = nn.LayerNorm(width)
        self.norm_latents = nn.LayerNorm(width)
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_kv = nn.Linear(width, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """media (B, M, W), latents (B, N, W) -> (B, N, W)."""
        media = self.norm_media(media)
        latents = self.norm_latents(latents)
        q = rearrange(self.to_q(latents), "b n (h d) -> b h n d", h=self.heads)
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)
        k = rearrange(k, "b m (h d) -> b h m d", h=self.heads)  # (B, heads, M+N, hd)
        v = rearrange(v, "b m (h d) -> b h m d", h=self.heads)
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


def feed_forward(width: int, mult: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(width),
        nn.Linear(width, width * mult, bias=False),
        nn.GELU(),
        nn.Linear(width * mult, width, bias=False),
    )


class PerceiverProjector(nn.Module):
    """Video tokens (B, T, P, D) -> LLM-ready video embeddings (B, N, H)."""

    def __init__(
        self, input_dim: int, output_dim: int, config: ProjectorConfig, output_std: float = 0.02
    ) -> None:
        super().__init__()
        self.config = config
        width = config.width
        # Per-channel statistics of the frozen encoder's tokens over the training clips
        # (set_input_statistics; identity until then). Frame features share a large
        # component (the scene, the backdrop); standardised, each channel's differences
        # between clips reach the latents at unit scale whatever the encoder. On
        # SynthKitchen it lowered the training loss, but on its own it did not stop
        # training from turning the video tokens into a fixed prompt (README).
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))
        self.input_proj = nn.Linear(input_dim, width)
        self.time_embed = nn.Parameter(torch.randn(config.max_time_steps, width) * 0.02)
        self.latents = nn.Parameter(torch.randn(config.num_latents, width) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(width, config.heads, config.head_dim),
                    feed_forward(width, config.ff_mult),
                ]
            )
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, output_dim)
        # Start at the scale of the LLM's own token embeddings: LayerNorm outputs have unit
        # variance, so weights of std output_std/sqrt(width) give outputs of std ~output_std.
        nn.init.normal_(self.head.weight, std=output_std / width**0.5)
        nn.init.zeros_(self.head.bias)

    @torch.no_grad()
    def set_input_statistics(self, features: Iterable[torch.Tensor]) -> None:
        """Standardise inputs with the per-channel mean and std of the given clips'
        tokens, each (T, P, D) (in float64: a few hundred clips sum millions of tokens)."""
        total = squares = None
        count = 0
        for clip in features:
            tokens = self.media_tokens(clip[None])[0].reshape(-1, clip.shape[-1]).double()
            total = tokens.sum(0) if total is None else total + tokens.sum(0)
            squares = (tokens**2).sum(0) if squares is None else squares + (tokens**2).sum(0)
            count += tokens.shape[0]
        if total is None or squares is None or count < 2:
            raise ValueError("input statistics need at least two feature tokens")
        mean = total / count
        variance = (squares / count - mean**2).clamp(min=0) * count / (count - 1)
        self.input_mean.copy_(mean)
        # A channel that never varies carries nothing; dividing by ~0 would blow it up.
        self.input_std.copy_(variance.sqrt().clamp(min=1e-3))

    def media_tokens(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, P, D) -> (B, T, P', D): P' = 1 with pool_frames, else P."""
        if self.config.pool_frames:
            return video_tokens.mean(dim=2, keepdim=True)
        return video_tokens

    def forward(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """video_tokens (B, T, P, D) -> (B, N, H)."""
        batch, time_steps = video_tokens.shape[:2]
        if time_steps > self.config.max_time_steps:
            raise ValueError(
                f"{time_steps} time steps exceed the projector's max_time_steps "
                f"({self.config.max_time_steps})"
            )
        media = self.media_tokens(video_tokens)  # (B, T, P', D)
        standardised = (media - self.input_mean) / self.input_std
        x = self.input_proj(standardised)  # (B, T, P', W)
        x = x + self.time_embed[:time_steps, None, :]  # broadcast over P
        media = rearrange(x, "b t p w -> b (t p) w")  # (B, T*P, W)
        latents = self.latents.expand(batch, -1, -1)  # (B, N, W)
        for attention, ff in self.layers:
            latents = latents + attention(media, latents)
            latents = latents + ff(latents)
        return self.head(self.norm(latents))  # (B, N, H)
