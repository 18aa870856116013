"""The trainable projector: a Perceiver resampler plus a linear head to the LLM width.

Following the paper (Sec. 3.3) and Flamingo: learned latents cross-attend to the video's
spatio-temporal tokens (with a learned embedding per time step, so frame order matters),
each layer followed by a feed-forward block; the latents are then projected to the LLM's
embedding width, giving a fixed number of tokens per video whatever the encoder.

Variants beside the paper's design are components (``stepdiff.variants``), switched on
in :class:`ProjectorConfig` and held in ``components``: they may steer the latents by
the other video of a pair, replace the linear output, and score pairs for a loss of
their own.

Shapes: B batch, T time steps, P tokens per step, D encoder width, W projector width,
N latents, H LLM width.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn

from stepdiff.errors import ConfigError
from stepdiff.variants import build_components

OUTPUT_HEADS = ("linear", "words")
# Options that were removed, with the commit where their code last lived: configs saved
# before load while they leave the option off (docs/research.md, "Removed variants").
REMOVED_OPTIONS = {"question_gate": "039973e"}


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
    # Components (stepdiff.variants; docs/training.md): "words" makes each video token a mixture
    # of the frozen LLM's own token embeddings; ``compare`` lets each video of a pair be
    # read against the other; ``caption_match`` adds a head that scores a caption
    # against a pair (DiffMCQ), of rank ``match_rank``.
    output_head: str = "linear"
    compare: bool = False
    caption_match: bool = False
    match_rank: int = 32

    def __post_init__(self) -> None:
        if self.output_head not in OUTPUT_HEADS:
            raise ConfigError(
                f"projector.output_head must be one of {', '.join(OUTPUT_HEADS)}, "
                f"not {self.output_head!r}"
            )


def drop_removed_options(values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` (a projector section) without removed options that are off; one that
    is on cannot be honoured, so it is an error."""
    kept = dict(values)
    for key, commit in REMOVED_OPTIONS.items():
        if kept.pop(key, False) is not False:
            raise ConfigError(
                f"{source}: projector.{key} was removed (no measured gain; its code last "
                f"lived in commit {commit}, see docs/research.md)"
            )
    return kept


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
        self,
        input_dim: int,
        output_dim: int,
        config: ProjectorConfig | None = None,
        output_std: float = 1.0,
    ) -> None:
        super().__init__()
        config = config or ProjectorConfig()
        self.config = config
        width = config.width
        # Per-channel statistics of the frozen encoder's tokens over the training clips
        # (set_input_statistics; identity until then). Frame features share a large
        # component (the scene, the backdrop); standardised, each channel's differences
        # between clips reach the latents at unit scale whatever the encoder.
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
        # Before the head, so that a component's initialisation draws the random numbers
        # it always drew and the head keeps its own.
        self.components = nn.ModuleDict(build_components(config, input_dim, output_dim))
        self.norm = nn.LayerNorm(width)
        self.output_dim = output_dim
        self.head = nn.Linear(width, output_dim)
        # Start at the scale of the LLM's own token embeddings: LayerNorm outputs have unit
        # variance, so weights of std output_std/sqrt(width) give outputs of std ~output_std.
        nn.init.normal_(self.head.weight, std=output_std / width**0.5)
        nn.init.zeros_(self.head.bias)

    @property
    def reads_pairs(self) -> bool:
        """Whether a component reads each video of a pair against the other."""
        return any(c.steers for c in self.components.values())

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

    def standardise(self, video_tokens: torch.Tensor) -> torch.Tensor:
        return (video_tokens - self.input_mean) / self.input_std

    def media_tokens(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, P, D) -> (B, T, P', D): P' = 1 with pool_frames, else P."""
        if self.config.pool_frames:
            return video_tokens.mean(dim=2, keepdim=True)
        return video_tokens

    def forward(
        self, video_tokens: torch.Tensor, others: torch.Tensor | None = None
    ) -> torch.Tensor:
        """video_tokens (B, T, P, D) -> (B, N, H). ``others`` (B, T, P, D): the other
        video of each pair, for components that compare (ignored by the others)."""
        tokens = self.head(self.norm(self.read(video_tokens, others)))  # (B, N, H)
        for component in self.components.values():
            tokens = component.to_llm(tokens)
        return tokens

    def read(self, video_tokens: torch.Tensor, others: torch.Tensor | None = None) -> torch.Tensor:
        """The latents after reading the video: (B, T, P, D) -> (B, N, W)."""
        batch, time_steps = video_tokens.shape[:2]
        if time_steps > self.config.max_time_steps:
            raise ValueError(
                f"{time_steps} time steps exceed the projector's max_time_steps "
                f"({self.config.max_time_steps})"
            )
        media = self.standardise(self.media_tokens(video_tokens))  # (B, T, P', D)
        x = self.input_proj(media)  # (B, T, P', W)
        x = x + self.time_embed[:time_steps, None, :]  # broadcast over P
        media = rearrange(x, "b t p w -> b (t p) w")  # (B, T*P, W)
        latents = self.latents.expand(batch, -1, -1)  # (B, N, W)
        if others is not None and self.reads_pairs:
            own, other = self.standardise(video_tokens), self.standardise(others)
            for component in self.components.values():
                latents = component.steer(latents, own, other)
        for attention, ff in self.layers:
            latents = latents + attention(media, latents)
            latents = latents + ff(latents)
        return latents

    def score(
        self,
        name: str,
        reference: torch.Tensor,
        candidate: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Component ``name``'s score of each (reference, candidate) row (B, T, P, D)
        each, with ``text`` (B, H) for a component that reads one -> (B,); a component
        that reads queries scores the reference's (B, N, H)."""
        if name not in self.components:
            raise ConfigError(f"this projector has no {name} component")
        component = self.components[name]
        if component.reads_queries:
            return component.score(self.head(self.norm(self.read(reference))), None, text)
        if candidate is None:
            raise ValueError(f"the {name} component scores (reference, candidate) pairs")
        if component.standardised_inputs:
            reference, candidate = self.standardise(reference), self.standardise(candidate)
        return component.score(reference, candidate, text)
