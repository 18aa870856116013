"""What a projector component is: one variant beside the paper's path, behind one small
interface (what it reads, what it scores, its loss), registered by name.

The projector calls the hooks on its path (each leaves the path unchanged by default);
the trainer adds ``weight x loss`` for each component whose training-config weight
(``weight_key``) is positive, on micro-batches of the data kind it ``trains_on``.

Shapes: B rows, T time steps, P tokens per step, D encoder width, N latents, W
projector width, H LLM width, G items of K options.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Component(nn.Module):
    name: ClassVar[str]  # registry key, and where its weights sit in the projector
    switch: ClassVar[str]  # the model override that turns it on, for error messages
    steers: ClassVar[bool] = False  # steer reads the other video of a pair
    # Its loss: the training-config weight, the data kind it learns from, whether score
    # reads a caption's summary by the frozen LLM (``text``), and whether it reads the
    # videos only through each clip's mean token.
    weight_key: ClassVar[str | None] = None
    trains_on: ClassVar[str | None] = None
    reads_text: ClassVar[bool] = False
    reads_means: ClassVar[bool] = False
    standardised_inputs: ClassVar[bool] = False  # score reads standardised tokens
    # score reads the projector's output queries (B, N, H) of one video per row (the
    # reference slot) instead of the videos: a loss on what each video token says.
    reads_queries: ClassVar[bool] = False
    # Loading: older checkpoints kept its weights at the projector's top level, named
    # so; weights (name prefixes) a checkpoint may lack, which then load fresh; buffers
    # whose length the checkpoint sets.
    legacy_prefixes: ClassVar[tuple[str, ...]] = ()
    optional_weights: ClassVar[tuple[str, ...]] = ()
    sized_by_checkpoint: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def enabled(cls, config: Any) -> bool:
        """Whether a ProjectorConfig turns this component on."""
        raise NotImplementedError

    # ----- what it reads: hooks on the projector's path ---------------------------------
    def steer(self, latents: torch.Tensor, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Latents (B, N, W) before they read the video, given both videos of each pair
        (B, T, P, D), standardised."""
        return latents

    def to_llm(self, tokens: torch.Tensor) -> torch.Tensor:
        """The video tokens (B, N, H) the LLM reads."""
        return tokens

    # ----- what it scores, and its loss -------------------------------------------------
    def score(
        self, reference: torch.Tensor, candidate: torch.Tensor | None, text: torch.Tensor | None
    ) -> torch.Tensor:
        """A score of each (reference, candidate) row (B, T, P, D) each -> (B,); with
        ``reads_queries``, of each video's queries (B, N, H) -> any shape its loss takes."""
        raise NotImplementedError(f"the {self.name} component scores nothing")

    def read_texts(self, model: Any, texts: list[str]) -> torch.Tensor:
        """The summaries (Q, H) of texts that ``score`` reads, by the model's frozen LLM."""
        raise NotImplementedError(f"the {self.name} component reads no text")

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Its loss on the scores (G, K) of G items' options with their targets (G, K)
        (with ``reads_queries``: on its scores of each video with their targets)."""
        raise NotImplementedError(f"the {self.name} component has no loss")

    def prepare(self, clips: list[torch.Tensor], texts: torch.Tensor | None) -> None:
        """Before training from scratch: fit its input statistics on the training clips
        (T, P, D) each and the summaries of its training texts (Q, H)."""

    def training_flops(self) -> float:
        """Forward + backward matmul FLOPs of its score for one row."""
        return 0.0
