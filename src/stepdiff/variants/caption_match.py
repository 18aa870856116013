"""The caption match head: scores how well a difference caption describes a pair.

DiffMCQ asks which of four (reference, candidate) pairs a caption describes, e.g. "adds
carrots instead of peppers", where the same pair swapped is one of the wrong options.
Scored by the caption's likelihood, a 135M LLM that barely reads the videos is at
chance. This head scores caption and pair directly, like an image-text matching head:
the frozen LLM's summary of the caption read alone (its mean last-layer state, which
knows word order) is mapped to two rank-``match_rank`` vectors, matched against linear
maps of the reference's and the candidate's mean frame features. Trained with
cross-entropy over each DiffMCQ item's four pairs (training config ``match_weight``), it
scores StepDiff's DiffMCQ (0.514 held-out; docs/results.md); the LLM's answers do not use it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stepdiff.variants.base import Component


class CaptionMatch(Component):
    name = "caption_match"
    switch = "projector.caption_match=true"
    weight_key = "match_weight"
    trains_on = "pair_choice"
    reads_text = True
    reads_means = True
    legacy_prefixes = ("match_",)
    optional_weights = ("",)  # added to a trained projector: a fresh head

    def __init__(self, config: Any, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.rank = rank = config.match_rank
        self.match_caption = nn.Linear(output_dim, 2 * rank)  # reference and candidate parts
        self.match_reference = nn.Linear(input_dim, rank)
        self.match_candidate = nn.Linear(input_dim, rank)
        # Per-channel statistics of the training captions' summaries and of the training
        # clips' frames (prepare; identity until then): LLM states have a few channels
        # hundreds of times larger than the rest, and a frame's mean over 49 patches
        # varies far less than one patch does.
        self.register_buffer("match_caption_mean", torch.zeros(output_dim))
        self.register_buffer("match_caption_std", torch.ones(output_dim))
        self.register_buffer("match_frame_mean", torch.zeros(input_dim))
        self.register_buffer("match_frame_std", torch.ones(input_dim))

    @classmethod
    def enabled(cls, config: Any) -> bool:
        return bool(config.caption_match)

    def score(
        self, reference: torch.Tensor, candidate: torch.Tensor, text: torch.Tensor | None
    ) -> torch.Tensor:
        """Caption summaries ``text`` (B, H) against their pairs -> (B,)."""
        assert text is not None, "a caption match reads each row's caption summary"
        caption = self.match_caption((text - self.match_caption_mean) / self.match_caption_std)
        frames = []
        for clip in (reference, candidate):  # (B, T, P, D) -> mean token (B, D)
            frames.append(
                (clip.flatten(1, -2).mean(dim=1) - self.match_frame_mean) / self.match_frame_std
            )
        rank = self.rank
        return (caption[:, :rank] * self.match_reference(frames[0])).sum(dim=-1) + (
            caption[:, rank:] * self.match_candidate(frames[1])
        ).sum(dim=-1)

    @torch.no_grad()
    def read_texts(self, model: Any, texts: list[str]) -> torch.Tensor:
        """The frozen LLM's mean last-layer state over each caption's tokens, the caption
        read alone (no prompt, no video) -> (Q, H)."""
        tokenizer, device = model.tokenizer, model.device
        ids = [
            tokenizer(text, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
            for text in texts
        ]
        length = max(map(len, ids))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # Padded on the right, so every caption's tokens keep positions 0, 1, ...
        input_ids = torch.tensor([row + [pad] * (length - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in ids])
        hidden = model.llm.base_model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device)
        ).last_hidden_state  # (Q, L, H)
        weights = mask.to(device, hidden.dtype)[..., None]  # (Q, L, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1)

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each item's scores (G, K) against its right pair."""
        return nn.functional.cross_entropy(scores, targets.argmax(dim=1).to(scores.device))

    @torch.no_grad()
    def prepare(self, clips: list[torch.Tensor], texts: torch.Tensor | None) -> None:
        """Standardise on the training clips' frames (each frame's mean token: a channel
        that barely varies between whole clips would otherwise be scaled up until its
        rare outliers dominated) and the training captions' summaries; a trained head
        keeps its own."""
        if texts is None or not bool((self.match_caption_std == 1).all()):
            return
        frames = torch.cat([clip.float().mean(dim=1) for clip in clips])  # (C*T, D)
        self.set_statistics(frames, texts)

    @torch.no_grad()
    def set_statistics(self, frames: torch.Tensor, captions: torch.Tensor) -> None:
        """From frames' mean tokens (F, D) and caption summaries (Q, H)."""
        for values, mean, std in (
            (frames, self.match_frame_mean, self.match_frame_std),
            (captions, self.match_caption_mean, self.match_caption_std),
        ):
            if values.shape[0] < 2:
                raise ValueError("match statistics need at least two frames and two captions")
            values = values.double()
            mean.copy_(values.mean(dim=0))
            std.copy_(values.std(dim=0).clamp(min=1e-3))

    def training_flops(self) -> float:
        """The caption's (H -> 2R) map and the two clips' (D -> R) maps; the summaries
        come from the frozen LLM once per distinct caption, before training."""
        maps = (self.match_caption, self.match_reference, self.match_candidate)
        return 3.0 * 2 * sum(m.weight.numel() for m in maps)
