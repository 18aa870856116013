"""The trainable projector: a Perceiver resampler plus a linear head to the LLM width.

Following the paper (Sec. 3.3) and Flamingo: learned latents cross-attend to the video's
spatio-temporal tokens (with a learned embedding per time step, so frame order matters),
each layer followed by a feed-forward block; the latents are then projected to the LLM's
embedding width, giving a fixed number of tokens per video whatever the encoder.

Shapes: B batch, T time steps, P tokens per step, D encoder width, W projector width,
N latents, H LLM width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from stepdiff.errors import ConfigError

OUTPUT_HEADS = ("linear", "words")
# The length of the centred question summary the gate reads. At unit length the gate
# barely moved in 300 steps at lr 1e-3, at unit variance per entry (length sqrt(H)) its
# first Adam steps can saturate it. At 8 it learnt to pick the asked channels in ~100
# steps for LLM widths 96 and 576 (tests/test_model.py).
QUESTION_SCALE = 8.0


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
    # "linear": each latent is mapped freely into the LLM's embedding space (the paper).
    # "words": each latent becomes a softmax mixture of the frozen LLM's own token
    # embeddings (attention over the vocabulary), so the video tokens stay word-like:
    # they cannot grow into a large fixed prompt, and the LLM reads them as it reads
    # words, e.g. copies "whisk" into an answer (README, "The words head and word
    # grounding").
    output_head: str = "linear"
    # The paper's projector reads each video alone and leaves the comparison to the LLM.
    # With ``compare``, each video of a pair also gets a summary of how its frames differ
    # from the other video's frames (standardised, frame by frame in time order: the mean
    # signed difference, which says which way, and the mean absolute one, which says how
    # much), added to its latents before they read the video, so the trainable part can
    # do the comparison, which a small frozen LLM does not do even from true attributes
    # written as text. On SynthKitchen it has not helped yet (README, "The comparing
    # projector"). Zero-initialised: at the start it is the paper's projector.
    compare: bool = False
    # The projector does not see the question, so one comparison summary must serve every
    # question, and the frozen LLM must pick out of it the part the question asks about
    # ("the same tools?" vs "the same ingredients?"), which a 135M LLM does poorly. With
    # ``question_gate`` (needs ``compare``), the mean of the question's token embeddings
    # weights each encoder channel of the frame differences before they are summarised
    # (as InstructBLIP's instruction-aware Q-Former lets the text steer what is read), so
    # the summary itself can be about the asked category. Starts as a gate of 1 on every
    # channel: at the start it is the plain comparing projector. Training centres it on
    # the training questions' mean summary; so centred, on SynthKitchen it learnt a
    # different weighting per category, but the ranking did not gain from it (README).
    question_gate: bool = False
    # DiffMCQ asks which of four (reference, candidate) pairs a difference caption
    # describes, e.g. "adds carrots instead of peppers", where the same pair swapped is
    # one of the wrong options. Scored by the caption's likelihood, a 135M LLM that does
    # not read the videos well is at chance. With ``caption_match``, a small head scores
    # caption and pair directly: the frozen LLM's summary of the caption text (its mean
    # last-layer state, which knows word order) is mapped to two rank-``match_rank``
    # vectors, matched against the reference's and the candidate's mean frame features
    # (a bilinear match, like an image-text matching head). It is trained on DiffMCQ
    # items of training clips (stepdiff.train: match_weight) and, when trained, gives
    # StepDiff's DiffMCQ scores; the LLM's answers do not use it.
    caption_match: bool = False
    match_rank: int = 32

    def __post_init__(self) -> None:
        if self.output_head not in OUTPUT_HEADS:
            raise ConfigError(
                f"projector.output_head must be one of {', '.join(OUTPUT_HEADS)}, "
                f"not {self.output_head!r}"
            )
        if self.question_gate and not self.compare:
            raise ConfigError("projector.question_gate needs projector.compare: true")


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
        if config.compare:
            self.compare_proj = nn.Sequential(
                nn.Linear(2 * input_dim, width), nn.GELU(), nn.Linear(width, width)
            )
            nn.init.zeros_(self.compare_proj[-1].weight)
            nn.init.zeros_(self.compare_proj[-1].bias)
            # A similarity read straight off the comparison, for training's comparison
            # loss (stepdiff.train: comparison_weight); the LLM never sees it.
            self.comparison_readout = nn.Linear(width, 1)
        if config.question_gate:
            # 2 * sigmoid(0) = 1: every channel passes unchanged until training moves it.
            self.question_gate = nn.Linear(output_dim, input_dim)
            nn.init.zeros_(self.question_gate.weight)
            nn.init.zeros_(self.question_gate.bias)
            # The mean summary of the training questions (set_question_statistics; zero
            # until then): questions share their template, so what tells them apart is
            # their difference from the mean, not the summary itself.
            self.register_buffer("question_mean", torch.zeros(output_dim))
        if config.caption_match:
            rank = config.match_rank
            self.match_caption = nn.Linear(output_dim, 2 * rank)  # reference and candidate parts
            self.match_reference = nn.Linear(input_dim, rank)
            self.match_candidate = nn.Linear(input_dim, rank)
            # Per-channel statistics of the training captions' summaries and of the
            # training clips' frames (set_match_statistics; identity until then): LLM
            # states have a few channels hundreds of times larger than the rest, and a
            # frame's mean over 49 patches varies far less than one patch does.
            self.register_buffer("match_caption_mean", torch.zeros(output_dim))
            self.register_buffer("match_caption_std", torch.ones(output_dim))
            self.register_buffer("match_frame_mean", torch.zeros(input_dim))
            self.register_buffer("match_frame_std", torch.ones(input_dim))
        self.norm = nn.LayerNorm(width)
        self.output_dim = output_dim
        self.head = nn.Linear(width, output_dim)
        # Start at the scale of the LLM's own token embeddings: LayerNorm outputs have unit
        # variance, so weights of std output_std/sqrt(width) give outputs of std ~output_std.
        nn.init.normal_(self.head.weight, std=output_std / width**0.5)
        nn.init.zeros_(self.head.bias)
        if config.output_head == "words":
            # Sharpness of the attention over the words. Cosine similarities lie in
            # [-1, 1], so the scale bounds how sharply one word can be picked. Adam moves
            # its log by about the learning rate per step: started at 10, it had barely
            # grown after 150 steps and the tokens stayed averages of many words.
            self.word_log_scale = nn.Parameter(torch.tensor(math.log(30.0)))
            # Which of the LLM's tokens the head may use (set_word_vocabulary; empty = all),
            # saved with the weights; the embeddings themselves come with the LLM.
            self.register_buffer("word_ids", torch.empty(0, dtype=torch.long))
            self.register_buffer("llm_embeddings", torch.empty(0, output_dim), persistent=False)

    def set_word_anchors(self, embeddings: torch.Tensor) -> None:
        """Bind the frozen LLM's input embeddings (V, H) that the "words" head mixes (by
        reference: they are the LLM's, not the projector's)."""
        if embeddings.shape[-1] != self.output_dim:
            raise ValueError(
                f"word embeddings of width {embeddings.shape[-1]} for a projector of "
                f"width {self.output_dim}"
            )
        self.llm_embeddings = embeddings.detach()

    @torch.no_grad()
    def set_word_vocabulary(self, token_ids: Sequence[int]) -> None:
        """Restrict the "words" head to these LLM token ids (e.g. the training texts'
        content words): a sharper choice among a few hundred words than among all."""
        ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long)
        if ids.numel() == 0:
            raise ValueError("the word vocabulary is empty")
        self.word_ids = ids.to(self.word_ids.device)

    def word_table(self) -> torch.Tensor:
        """The embeddings (K, H) of the words the head may use."""
        if self.llm_embeddings.numel() == 0:
            raise RuntimeError("the words head needs set_word_anchors(LLM input embeddings)")
        if self.word_ids.numel() == 0:
            return self.llm_embeddings
        return self.llm_embeddings[self.word_ids]

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

    def forward(
        self,
        video_tokens: torch.Tensor,
        others: torch.Tensor | None = None,
        question: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """video_tokens (B, T, P, D) -> (B, N, H). ``others`` (B, T, P, D): the other
        video of each pair, read by the ``compare`` summary (ignored without it);
        ``question`` (B, H): the mean embedding of each row's question, which steers that
        summary with ``question_gate`` (ignored without it)."""
        queries = self.head(self.norm(self.read(video_tokens, others, question)))  # (B, N, H)
        if self.config.output_head == "linear":
            return queries
        logits, words = self._word_logits(queries)  # (B, N, K), (K, H)
        return torch.softmax(logits, dim=-1) @ words  # (B, N, H)

    def word_log_probs(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """The "words" head's distributions: (B, T, P, D) -> log-probabilities (B, N, K)
        over the word vocabulary (set_word_vocabulary), one per video token."""
        logits, _ = self._word_logits(self.head(self.norm(self.read(video_tokens))))
        return torch.log_softmax(logits, dim=-1)

    def _word_logits(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled cosine similarity of queries (B, N, H) to each word -> logits (B, N, K)
        and the words' embeddings (K, H) in the queries' dtype."""
        words = self.word_table().to(queries.dtype)
        unit_words = nn.functional.normalize(words, dim=-1)
        cosine = nn.functional.normalize(queries, dim=-1) @ unit_words.T
        return cosine * self.word_log_scale.exp(), words

    @torch.no_grad()
    def set_question_statistics(self, summaries: torch.Tensor) -> None:
        """Centre the gate's input on the mean of these question summaries (Q, H), e.g.
        one per distinct training question."""
        if summaries.ndim != 2 or summaries.shape[0] == 0:
            raise ValueError(
                f"question statistics need summaries (Q, H), not {tuple(summaries.shape)}"
            )
        self.question_mean.copy_(summaries.double().mean(dim=0).to(self.question_mean.dtype))

    def question_gates(self, question: torch.Tensor) -> torch.Tensor:
        """The gate on each encoder channel for question summaries (B, H) -> (B, D)."""
        # Off the training questions' mean, so the words that differ between questions
        # (DiffRank's category: 1-2 tokens of ~20) are most of the gate's input, not a
        # few percent of it; then of a fixed length whatever the LLM's embedding scale.
        centred = question - self.question_mean  # (B, H)
        centred = centred - centred.mean(dim=-1, keepdim=True)
        question = QUESTION_SCALE * nn.functional.normalize(centred, dim=-1)
        return 2 * torch.sigmoid(self.question_gate(question))  # (B, D)

    def comparison(
        self,
        video_tokens: torch.Tensor,
        others: torch.Tensor,
        question: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """How each video differs from the other of its pair: 2 x (B, T, P, D) -> (B, W);
        with ``question_gate`` and ``question`` (B, H), in the channels the question
        weights."""
        if others.shape != video_tokens.shape:
            raise ValueError(
                f"compared videos differ in shape: {tuple(video_tokens.shape)} and "
                f"{tuple(others.shape)}"
            )
        own = ((video_tokens - self.input_mean) / self.input_std).mean(dim=2)  # (B, T, D)
        other = ((others - self.input_mean) / self.input_std).mean(dim=2)  # (B, T, D)
        difference = own - other  # (B, T, D)
        if self.config.question_gate and question is not None:
            difference = difference * self.question_gates(question)[:, None, :]
        summary = torch.cat([difference.mean(dim=1), difference.abs().mean(dim=1)], dim=-1)
        return self.compare_proj(summary)  # (B, W)

    def comparison_score(
        self,
        video_tokens: torch.Tensor,
        others: torch.Tensor,
        question: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The read-out of :meth:`comparison`: 2 x (B, T, P, D) -> (B,)."""
        return self.comparison_readout(self.comparison(video_tokens, others, question))[:, 0]

    @torch.no_grad()
    def set_match_statistics(self, frames: torch.Tensor, captions: torch.Tensor) -> None:
        """Standardise the caption match's inputs: the mean token of each frame of the
        training clips (F, D) and the training captions' summaries (Q, H).

        Clip channels are scaled by their spread over single frames (each frame's mean
        token), not over whole clips: a channel that barely varies between clips would
        otherwise be scaled up until its rare outliers dominated the scores, and the
        head trained far less steadily that way."""
        for values, mean, std in (
            (frames, self.match_frame_mean, self.match_frame_std),
            (captions, self.match_caption_mean, self.match_caption_std),
        ):
            if values.shape[0] < 2:
                raise ValueError("match statistics need at least two frames and two captions")
            values = values.double()
            mean.copy_(values.mean(dim=0))
            std.copy_(values.std(dim=0).clamp(min=1e-3))

    def caption_match(
        self, reference: torch.Tensor, candidate: torch.Tensor, caption: torch.Tensor
    ) -> torch.Tensor:
        """How well each caption describes its pair: reference and candidate (B, T, P, D),
        caption summaries (B, H) -> scores (B,)."""
        if not self.config.caption_match:
            raise ConfigError("a caption match needs projector.caption_match: true")
        rank = self.config.match_rank
        text = self.match_caption(
            (caption - self.match_caption_mean) / self.match_caption_std
        )  # (B, 2R)
        reference = (
            reference.flatten(1, -2).mean(dim=1) - self.match_frame_mean
        ) / self.match_frame_std
        candidate = (
            candidate.flatten(1, -2).mean(dim=1) - self.match_frame_mean
        ) / self.match_frame_std
        return (text[:, :rank] * self.match_reference(reference)).sum(dim=-1) + (
            text[:, rank:] * self.match_candidate(candidate)
        ).sum(dim=-1)

    def read(
        self,
        video_tokens: torch.Tensor,
        others: torch.Tensor | None = None,
        question: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The latents after reading the video: (B, T, P, D) -> (B, N, W); with the
        ``compare`` option and ``others`` (B, T, P, D), conditioned on the difference
        (steered by ``question`` (B, H) with ``question_gate``)."""
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
        if self.config.compare and others is not None:
            latents = latents + self.comparison(video_tokens, others, question)[:, None, :]
        for attention, ff in self.layers:
            latents = latents + attention(media, latents)
            latents = latents + ff(latents)
        return latents
