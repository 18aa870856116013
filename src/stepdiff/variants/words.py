"""The words head: each video token is a mixture of the frozen LLM's own token embeddings.

Each latent's query is matched (scaled cosine similarity) against the embeddings of a
word vocabulary (the training texts' words, saved with the weights; the embeddings come
with the LLM), and the video token is the softmax mixture of those embeddings. The video
tokens stay word-like: they cannot grow into a large fixed prompt, and the LLM reads
them as words it can copy into an answer. ``log_probs`` gives the distributions
themselves, for losses that teach each token a word (docs/research.md, "The words
head and word grounding" and "Description alignment").

Shapes: B videos, N video tokens, H LLM width, K words in the vocabulary, V all tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stepdiff.variants.base import Component


class WordsHead(Component):
    name = "words"
    switch = "projector.output_head=words"
    weight_key = "describe_weight"
    trains_on = "descriptions"
    reads_queries = True
    legacy_prefixes = ("word_",)
    sized_by_checkpoint = ("word_ids",)

    def __init__(self, config: Any, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.output_dim = output_dim
        # Sharpness of the attention over the words. Cosine similarities lie in [-1, 1],
        # so the scale bounds how sharply one word can be picked. Adam moves its log by
        # about the learning rate per step: started at 10, it had barely grown after 150
        # steps and the tokens stayed averages of many words.
        self.word_log_scale = nn.Parameter(torch.tensor(math.log(30.0)))
        # Which of the LLM's tokens the head may use (set_vocabulary; empty = all).
        self.register_buffer("word_ids", torch.empty(0, dtype=torch.long))
        self.register_buffer("llm_embeddings", torch.empty(0, output_dim), persistent=False)

    @classmethod
    def enabled(cls, config: Any) -> bool:
        return config.output_head == "words"

    def set_anchors(self, embeddings: torch.Tensor) -> None:
        """Bind the frozen LLM's input embeddings (V, H), by reference: they are the
        LLM's, not the projector's."""
        if embeddings.shape[-1] != self.output_dim:
            raise ValueError(
                f"word embeddings of width {embeddings.shape[-1]} for a projector of "
                f"width {self.output_dim}"
            )
        self.llm_embeddings = embeddings.detach()

    @torch.no_grad()
    def set_vocabulary(self, token_ids: Sequence[int]) -> None:
        """A sharper choice among a few hundred words than among all."""
        ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long)
        if ids.numel() == 0:
            raise ValueError("the word vocabulary is empty")
        self.word_ids = ids.to(self.word_ids.device)

    def table(self) -> torch.Tensor:
        """The embeddings (K, H) of the words the head may use."""
        if self.llm_embeddings.numel() == 0:
            raise RuntimeError("the words head needs set_anchors(LLM input embeddings)")
        if self.word_ids.numel() == 0:
            return self.llm_embeddings
        return self.llm_embeddings[self.word_ids]

    def logits(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries (B, N, H) -> logits (B, N, K) and the words (K, H) in their dtype."""
        words = self.table().to(queries.dtype)
        unit_words = nn.functional.normalize(words, dim=-1)
        cosine = nn.functional.normalize(queries, dim=-1) @ unit_words.T
        return cosine * self.word_log_scale.exp(), words

    def to_llm(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, words = self.logits(tokens)  # (B, N, K), (K, H)
        return torch.softmax(logits, dim=-1) @ words  # (B, N, H)

    def score(
        self, queries: torch.Tensor, candidate: torch.Tensor | None, text: torch.Tensor | None
    ) -> torch.Tensor:
        """Log-probabilities (B, N, K) over the vocabulary, one row per video token."""
        return torch.log_softmax(self.logits(queries)[0], dim=-1)

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each video token's word (log-probabilities (B, N, K)) against
        its slot's token id (B, N), which must be in the vocabulary."""
        if self.word_ids.numel() == 0:  # the whole vocabulary: ids are indices
            return nn.functional.nll_loss(scores.flatten(0, 1), targets.flatten())
        index = torch.searchsorted(self.word_ids, targets)  # word_ids is sorted
        found = index.clamp(max=len(self.word_ids) - 1)
        if not torch.equal(self.word_ids[found], targets):
            raise ValueError("a description token is not in the words head's vocabulary")
        return nn.functional.nll_loss(scores.flatten(0, 1), found.flatten())
