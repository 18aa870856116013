"""StepDiffModel: frozen video encoder -> trainable Perceiver projector -> frozen LLM.

Both videos of a pair go through the same projector and are spliced into one prompt
(reference first, candidate second), so the LLM reads them together. Only the projector
trains; the loss covers answer tokens only.

Shapes: B pairs, T time steps, P tokens per step, D encoder width, N video tokens per
video, H LLM width, L sequence length, V vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from stepdiff.config import StepDiffConfig
from stepdiff.encoders.base import FrameEncoder
from stepdiff.encoders.cache import FeatureCache
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.errors import ConfigError
from stepdiff.llm.loading import FrozenLLM
from stepdiff.llm.prompt import (
    SINGLE_VIDEO_TEXT,
    VIDEO_TOKEN_ID,
    VIDEOS_TEXT,
    InterleavedSample,
    TokenisedSample,
    select_prompt_format,
    tokenise_sample,
)
from stepdiff.model.batching import IGNORE_INDEX, TokenBatch, collate
from stepdiff.model.llamacpp_answers import LlamaCppAnswerer
from stepdiff.model.prefix import (
    PrefixSplit,
    best_shared_start,
    greedy_decode,
    pad_suffixes,
    prefix_cache,
    prefix_key,
    run_grouped,
    run_suffixes,
    split_shared_prefix,
    suffix_answer_logprob,
    video_starts,
)
from stepdiff.model.ranknet import ranknet_loss
from stepdiff.model.scoring import (
    answer_logprobs,
    greedy_generate,
    p_yes_from_forward,
)
from stepdiff.model.splice import splice_video_embeddings
from stepdiff.model_files import CHECKPOINT_FORMAT, CONFIG_FILE, PROJECTOR_FILE
from stepdiff.projector import PerceiverProjector
from stepdiff.video.clip import ClipRef

# Any question: it marks where the question-independent part of a prompt ends.
PROBE_QUESTION = "?"


class StepDiffModel(nn.Module):
    """Answer questions about a (reference, candidate) pair of videos."""

    def __init__(
        self,
        config: StepDiffConfig,
        encoder: FrameEncoder,
        llm: FrozenLLM,
        projector: PerceiverProjector,
        *,
        feature_cache: FeatureCache | None = None,
        projector_trained: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.llm = llm.model
        self.tokenizer = llm.tokenizer
        self.llm_name = llm.name
        self.projector = projector
        self.projector_trained = projector_trained
        self.prompt_format = select_prompt_format(config.prompt_format, llm.name, llm.tokenizer)
        self.featurizer = ClipFeaturizer(encoder, config.num_frames, feature_cache)
        self.llamacpp: LlamaCppAnswerer | None = None  # see use_llamacpp
        self._prefix_memo: tuple[str, object] | None = None  # (prefix key, its LLM cache)

    def use_llamacpp(self, n_threads: int | None = None) -> None:
        """Generate answers through llama.cpp from the LLM's GGUF file, with the video
        tokens injected as embeddings (much faster on CPUs; scoring stays in torch)."""
        from stepdiff.llm.loading import resolve_gguf
        from stepdiff.model.llamacpp_answers import LlamaCppAnswerer

        gguf = resolve_gguf(self.config.llm)
        if gguf is None:
            raise ConfigError(
                f"llama.cpp answers need a GGUF LLM, but the LLM is {self.config.llm!r}"
            )
        answerer = LlamaCppAnswerer(gguf, n_threads=n_threads or torch.get_num_threads())
        if answerer.hidden_size != self.projector_module.output_dim:
            raise ConfigError(f"{gguf}: width {answerer.hidden_size} differs from the projector's")
        self.llamacpp = answerer

    # ----- frozen parts stay frozen ------------------------------------------------
    def train(self, mode: bool = True) -> StepDiffModel:
        """Only the projector switches mode: the frozen parts always run in eval mode."""
        self.projector.train(mode)
        self.training = mode
        return self

    @property
    def projector_module(self) -> PerceiverProjector:
        """The projector itself, also when a trainer wrapped it for data parallelism."""
        return getattr(self.projector, "module", self.projector)

    @property
    def num_video_tokens(self) -> int:
        return self.projector_module.config.num_latents

    @property
    def device(self) -> torch.device:
        return self.projector_module.latents.device

    # ----- inputs -------------------------------------------------------------------
    def clip_features(self, clips: Sequence[ClipRef]) -> torch.Tensor:
        """Decode, sample and encode clips (cached) -> (B, T, P, D)."""
        return self.featurizer(clips).to(self.device)

    def _tokenise(
        self,
        questions: Sequence[str],
        answers: Sequence[str] | None,
        *,
        padding_side: str,
        answer_end: bool = True,
        context: str = VIDEOS_TEXT,
    ) -> TokenBatch:
        _check_answers(questions, answers)
        samples = self._samples(questions, answers, answer_end=answer_end, context=context)
        return self.collate(samples, padding_side=padding_side, require_answers=answers is not None)

    def _samples(
        self,
        questions: Sequence[str],
        answers: Sequence[str] | None,
        *,
        answer_end: bool = True,
        context: str = VIDEOS_TEXT,
    ) -> list[TokenisedSample]:
        return [
            tokenise_sample(
                self.prompt_format,
                question,
                None if answers is None else answers[i],
                self.num_video_tokens,
                answer_end=answer_end,
                context=context,
            )
            for i, question in enumerate(questions)
        ]

    def collate(
        self,
        samples: Sequence[TokenisedSample | InterleavedSample],
        *,
        padding_side: str = "right",
        require_answers: bool = True,
    ) -> TokenBatch:
        """Pad tokenised samples into one batch (answer-only labels)."""
        return collate(
            samples,
            pad_id=self.tokenizer.pad_token_id,
            padding_side=padding_side,
            max_length=self.config.max_length,
            require_answers=require_answers,
        )

    @property
    def question_gated(self) -> bool:
        """Whether the video tokens depend on the question (``projector.question_gate``)."""
        return self.projector_module.config.question_gate

    def project_videos(
        self,
        videos: torch.Tensor,
        paired: bool | None = None,
        question: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Video tokens for the LLM: (B, V, T, P, D) -> (B, V, N, H). ``paired``: the two
        videos of each row are a (reference, candidate) pair, which a ``compare``
        projector reads against each other (default: when V is 2; training says so
        explicitly, since an interleaved sequence may also hold two clips). ``question``
        (B, H): each row's question summary (see :meth:`question_summary`), which a
        ``question_gate`` projector's comparison reads."""
        batch_size, num_videos = videos.shape[:2]
        # The projector keeps fp32 weights whatever the frozen parts run in; the splice
        # casts its output to the LLM's dtype.
        dtype = self.projector_module.latents.dtype
        videos = videos.to(dtype)
        paired = num_videos == 2 if paired is None else paired
        others = None
        if paired and self.projector_module.config.compare:
            others = videos.flip(1).flatten(0, 1)  # each video's partner, (B*2, T, P, D)
        if question is not None:
            question = question.to(dtype).repeat_interleave(num_videos, dim=0)  # (B*V, H)
        tokens = self.projector(videos.flatten(0, 1), others, question)  # (B*V, N, H)
        return tokens.view(batch_size, num_videos, *tokens.shape[1:])

    @staticmethod
    def question_summary(batch: TokenBatch, text: torch.Tensor) -> torch.Tensor:
        """The mean embedding of each row's prompt text after its last video, answer
        tokens left out: the question (and the fixed template around it, a constant).
        text (B, L, H) -> (B, H)."""
        ids = batch.input_ids.to(text.device)
        positions = torch.arange(ids.shape[1], device=text.device).expand_as(ids)  # (B, L)
        last_video = torch.where(ids == VIDEO_TOKEN_ID, positions, -1).max(dim=1).values
        is_question = (
            batch.attention_mask.to(text.device).bool()
            & (batch.labels.to(text.device) == IGNORE_INDEX)
            & (positions > last_video[:, None])
        )  # (B, L)
        weights = is_question.to(text.dtype)
        total = (text * weights[..., None]).sum(dim=1)  # (B, H)
        return total / weights.sum(dim=1, keepdim=True).clamp(min=1)

    def question_summaries(self, questions: Sequence[str]) -> torch.Tensor:
        """:meth:`question_summary` of each question in a pair prompt -> (B, H)."""
        batch = self._tokenise(questions, None, padding_side="right")
        ids = batch.input_ids.to(self.device)
        return self.question_summary(batch, self.llm.get_input_embeddings()(ids.clamp(min=0)))

    def comparison_scores(self, batch: TokenBatch, videos: torch.Tensor) -> torch.Tensor:
        """The comparing projector's own similarity read-out for each (reference,
        candidate) row, steered by the row's question with a question gate; no LLM runs.
        videos (B, 2, T, P, D) -> (B,)."""
        projector = self.projector_module
        if not projector.config.compare:
            raise ConfigError("a comparison read-out needs projector.compare")
        dtype = projector.latents.dtype
        question = None
        if self.question_gated:
            ids = batch.input_ids.to(self.device)
            text = self.llm.get_input_embeddings()(ids.clamp(min=0))  # (B, L, H)
            question = self.question_summary(batch, text).to(dtype)  # (B, H)
        reference, candidate = videos.to(dtype).unbind(dim=1)  # (B, T, P, D) each
        return projector.comparison_score(candidate, reference, question)

    @property
    def matches_captions(self) -> bool:
        """Whether the projector has a caption match head (``projector.caption_match``)."""
        return self.projector_module.config.caption_match

    @torch.no_grad()
    def caption_summaries(self, captions: Sequence[str]) -> torch.Tensor:
        """The frozen LLM's mean last-layer state over each caption's tokens, the caption
        read alone (no prompt, no video): what the caption match head reads. -> (B, H)."""
        ids = [
            self.tokenizer(caption, add_special_tokens=False)["input_ids"]
            or [self.tokenizer.eos_token_id]
            for caption in captions
        ]
        length = max(map(len, ids))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Padded on the right, so every caption's tokens keep positions 0, 1, ...
        input_ids = torch.tensor([row + [pad] * (length - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in ids])
        hidden = self.llm.base_model(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
        ).last_hidden_state  # (B, L, H)
        weights = mask.to(self.device, hidden.dtype)[..., None]  # (B, L, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1)

    def caption_match_scores(self, videos: torch.Tensor, summaries: torch.Tensor) -> torch.Tensor:
        """The caption match head's score of each (reference, candidate) row for its
        caption: videos (B, 2, T, P, D), caption summaries (B, H) -> (B,). No LLM runs."""
        projector = self.projector_module
        dtype = projector.latents.dtype
        reference, candidate = videos.to(dtype).unbind(dim=1)  # (B, T, P, D) each
        return projector.caption_match(reference, candidate, summaries.to(dtype))

    @torch.no_grad()
    def match_captions(
        self, reference: torch.Tensor, candidate: torch.Tensor, captions: Sequence[str]
    ) -> torch.Tensor:
        """How well each caption describes its pair, by the caption match head:
        reference and candidate (B, T, P, D) -> (B,)."""
        videos = _pair(reference, candidate).to(self.device)  # (B, 2, T, P, D)
        return self.caption_match_scores(videos, self.caption_summaries(captions))

    def _inputs_embeds(
        self, batch: TokenBatch, videos: torch.Tensor, paired: bool | None = None
    ) -> torch.Tensor:
        """Token embeddings with the videos (B, V, T, P, D) spliced in -> (B, L, H)."""
        if videos.shape[0] != batch.input_ids.shape[0]:
            raise ValueError(
                f"{batch.input_ids.shape[0]} prompts but video features {tuple(videos.shape)}"
            )
        ids = batch.input_ids.to(self.device)
        # Placeholders are not real ids: embed a stand-in, then overwrite those rows.
        text = self.llm.get_input_embeddings()(ids.clamp(min=0))  # (B, L, H)
        question = self.question_summary(batch, text) if self.question_gated else None
        video_tokens = self.project_videos(videos, paired, question)  # (B, V, N, H)
        return splice_video_embeddings(ids, text, video_tokens)

    def _hidden(
        self, batch: TokenBatch, videos: torch.Tensor, paired: bool | None = None
    ) -> torch.Tensor:
        """The LLM's last hidden states -> (B, L, H)."""
        embeds = self._inputs_embeds(batch, videos, paired)
        mask = batch.attention_mask.to(self.device)
        return self.llm.base_model(inputs_embeds=embeds, attention_mask=mask)[0]

    @torch.no_grad()
    def _scoring_hidden(self, batch: TokenBatch, videos: torch.Tensor) -> torch.Tensor:
        """As :meth:`_hidden` for scoring (no gradients), running once the start that
        neighbouring rows share: up to the candidate video for DiffRank's candidates of one
        reference, else the system text before the first video. Returns (B, L, H), zeros
        over the shared start."""
        embeds = self._inputs_embeds(batch, videos)  # (B, L, H)
        mask = batch.attention_mask.to(self.device)
        # A start must hold no answer token, nor predict one (videos precede the answer).
        answered = (batch.labels != IGNORE_INDEX).int().argmax(dim=1).min()
        starts = video_starts(batch.input_ids, videos.shape[1], self.num_video_tokens)
        groups = best_shared_start(embeds, mask, [s for s in starts if s < int(answered)])
        if groups is None:
            return self.llm.base_model(inputs_embeds=embeds, attention_mask=mask)[0]
        hidden = embeds.new_zeros(embeds.shape)
        hidden[:, groups.length :] = run_grouped(self.llm, embeds, mask, groups)
        return hidden

    def _answer_scores(
        self, batch: TokenBatch, videos: torch.Tensor, share_starts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of answer-token log-probabilities per row (B,) and the log-probabilities at
        the position that predicts each row's first answer token (B, V). ``share_starts``:
        see :meth:`_scoring_hidden`."""
        hidden = (  # (B, L, H)
            self._scoring_hidden(batch, videos) if share_starts else self._hidden(batch, videos)
        )
        return answer_logprobs(self.llm.get_output_embeddings(), hidden, batch.labels)

    # ----- training -----------------------------------------------------------------
    def forward(
        self,
        batch: TokenBatch,
        videos: torch.Tensor,
        negatives: torch.Tensor | None = None,
        contrast_weight: float = 1.0,
        paired: bool | None = None,
        rank_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss: mean cross-entropy over the labelled tokens; videos
        (B, V, T, P, D) in prompt order (``paired``: as in :meth:`project_videos`).
        Wrappers such as FSDP gather their parameters around ``forward``, so training
        calls the model itself.

        With ``rank_scores`` (G, K), the B = G x K rows are G ranking items of K targets
        each (row g*K + k: target k of item g), and the loss is a ranking loss instead
        (see :meth:`_rank_loss`).

        With ``negatives`` (other clips in the same layout, (B, V, T, P, D)), adds
        ``contrast_weight`` times -log sigmoid(log p(answer | videos) - log p(answer |
        negatives)), summed over each answer's tokens and averaged over rows. The answer
        loss alone is mostly met by a fixed prompt that teaches the answers' wording
        (training shrank the tokens' differences between clips), while this term is met
        only by tokens that tell the clips apart, and it is the comparison DiffMCQ makes.

        The vocabulary projection runs only where a label is: answers are a small part of
        each sequence, and the (L, V) logits would otherwise cost about a fifth of a small
        LLM's compute and most of its activation memory.
        """
        rows = batch.input_ids.shape[0]
        if negatives is not None:  # one forward over the rows twice: own videos, then others
            batch = batch.repeat(2)
            videos = torch.cat([videos, negatives])  # (2B, V, T, P, D)
        hidden = self._hidden(batch, videos, paired)  # (R, L, H)
        targets = batch.labels.to(self.device)[:, 1:]  # position t predicts token t+1
        keep = targets != IGNORE_INDEX  # (R, L-1)
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][keep])  # (K, V)
        if rank_scores is not None:
            return self._rank_loss(batch, keep, logits, targets[keep], rank_scores)
        token_loss = nn.functional.cross_entropy(
            logits.float(), targets[keep], reduction="none"
        )  # (K,)
        if batch.answer_probability is not None and batch.alternative_ids is not None:
            token_loss = self._soft_first_tokens(batch, keep, logits, token_loss)
        own = keep[:rows]
        answer_loss = token_loss[: int(own.sum())].mean()
        if negatives is None:
            return answer_loss
        row_of = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]
        loglik = -token_loss.new_zeros(len(keep)).index_add(0, row_of, token_loss)  # (2B,)
        margin = loglik[:rows] - loglik[rows:]  # (B,)
        return answer_loss + contrast_weight * nn.functional.softplus(-margin).mean()

    @staticmethod
    def _rank_loss(
        batch: TokenBatch,
        keep: torch.Tensor,
        logits: torch.Tensor,
        targets: torch.Tensor,
        rank_scores: torch.Tensor,
    ) -> torch.Tensor:
        """RankNet's pairwise loss (:func:`ranknet_loss`) on each row's score. A row's score
        is what the benchmark reads: with an alternative answer (DiffRank's "YES" against
        "NO"), log p(answer) - log p(alternative) at the first answer token, the log-odds
        of P(YES) for one-token answers; without one (a DiffMCQ caption), the answer's
        summed log-likelihood. Only the order inside an item counts, as for the
        benchmark's tau and argmax; a pointwise cross-entropy also spends the projector on
        each category's base rate. keep (R, L-1): labelled positions; logits (K, V) and
        targets (K,) at them; rank_scores (G, K') with G x K' = R."""
        log_probs = logits.float().log_softmax(dim=-1)  # (K, V)
        if batch.alternative_ids is not None:
            first = (keep & (keep.cumsum(dim=1) == 1))[keep]  # (K,) each row's first token
            alternative = batch.alternative_ids.to(log_probs.device)[:, None]  # (R, 1)
            answer = targets[first][:, None]  # (R, 1)
            score = log_probs[first].gather(1, answer) - log_probs[first].gather(1, alternative)
        else:
            row_of = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]
            token = log_probs.gather(1, targets[:, None])[:, 0]  # (K,)
            score = token.new_zeros(len(keep)).index_add(0, row_of, token)  # (R,)
        return ranknet_loss(score.reshape(rank_scores.shape), rank_scores)

    def _soft_first_tokens(
        self, batch: TokenBatch, keep: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        """The labelled tokens' losses (K,) with each soft row's first answer token scored
        against its two-way target: p * CE(answer) + (1 - p) * CE(alternative), which is
        lowest where the model gives the answer probability p (for "YES" against "NO",
        P(YES) = p), instead of a coin flip's all-or-nothing label. keep (R, L-1): which
        positions are labelled; logits (K, V) at them."""
        assert batch.answer_probability is not None and batch.alternative_ids is not None
        rows = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]  # (K,)
        first = (keep & (keep.cumsum(dim=1) == 1))[keep]  # (K,) each row's first answer token
        probability = batch.answer_probability.to(loss.device)[rows]  # (K,)
        soft = first & ~probability.isnan()
        alternative = torch.where(
            soft, batch.alternative_ids.to(loss.device)[rows], IGNORE_INDEX
        )  # (K,)
        alternative_loss = nn.functional.cross_entropy(
            logits.float(), alternative, reduction="none"
        )  # (K,): 0 where ignored
        weight = torch.where(soft, probability, 1.0)
        return weight * loss + (1 - weight) * alternative_loss

    def answer_loss(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> torch.Tensor:
        """Mean cross-entropy over answer tokens. reference/candidate: (B, T, P, D)."""
        batch = self._tokenise(questions, answers, padding_side="right")
        return self(batch, _pair(reference, candidate))

    # ----- one pair, several questions: the shared prefix runs once -------------------
    def _shared_split(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        answers: Sequence[str] | None,
        answer_end: bool = True,
    ) -> PrefixSplit | None:
        """The prompts split at their shared prefix when every row shows the same pair of
        videos (questions about one pair), else None: run the rows in full."""
        # One row counts too: its prefix cache is kept for the next question (see
        # _run_shared), and the lean decoding loop beats transformers' generate.
        same = all(
            torch.equal(video, video[:1].expand_as(video)) for video in (reference, candidate)
        )
        # A question-gated projector's video tokens differ from question to question, so
        # the prefix that holds them is not shared.
        if not same or self.question_gated:
            return None
        _check_answers(questions, answers)
        return self._split(self._samples(questions, answers, answer_end=answer_end))

    def _split(self, samples: Sequence[TokenisedSample]) -> PrefixSplit | None:
        """``samples`` split where their question starts (see split_shared_prefix)."""
        return split_shared_prefix(samples, probe=self._samples([PROBE_QUESTION], None)[0])

    def _decode_answers(self, tokens: list[list[int]]) -> list[str]:
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def _run_shared(
        self, split: PrefixSplit, reference: torch.Tensor, candidate: torch.Tensor
    ) -> tuple[torch.Tensor, object, object]:
        """Suffix hidden states (K, S, H), the cache and the padded suffix batch."""
        embed = self.llm.get_input_embeddings()
        ids = torch.tensor([split.prefix], device=self.device)  # (1, Lp)
        videos = _pair(reference[:1], candidate[:1])  # (1, 2, T, P, D)
        video_tokens = self.project_videos(videos)  # (1, 2, N, H)
        prefix = splice_video_embeddings(ids, embed(ids.clamp(min=0)), video_tokens)
        batch = pad_suffixes(split, self.tokenizer.pad_token_id, self.device)
        # The frozen LLM's prefix cache depends only on the prefix ids and video tokens: a
        # chat about one pair (the web app, repeated `ask`) reuses the last one.
        key = prefix_key(split.prefix, video_tokens.detach().float().cpu().numpy())
        if self._prefix_memo is None or self._prefix_memo[0] != key:
            self._prefix_memo = (key, prefix_cache(self.llm, prefix))
        hidden, cache = run_suffixes(self.llm, embed, self._prefix_memo[1], batch)
        return hidden, cache, batch

    # ----- scoring --------------------------------------------------------------------
    @torch.no_grad()
    def loglik(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        answers: Sequence[str],
        *,
        answer_end: bool = True,
        share_prefix: bool = True,
    ) -> torch.Tensor:
        """Sum of log p(answer token | videos, question, previous tokens) per pair -> (B,).

        With ``share_prefix`` (same results, less compute): when every row shows the same
        pair, the prompt prefix that holds the videos runs once for all rows; else the
        start that neighbouring rows share (up to the candidate video for one reference's
        candidates, as in DiffRank, or the system text) runs once per group."""
        return self._pair_answer_scores(
            reference, candidate, questions, answers, answer_end, share_prefix
        )[0]

    def _pair_answer_scores(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        answers: Sequence[str],
        answer_end: bool,
        share_prefix: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Answer scores of each pair, as :func:`answer_logprobs` returns them, with the
        sharing :meth:`loglik` describes."""
        split = share_prefix and self._shared_split(
            reference, candidate, questions, answers, answer_end
        )
        if split:
            hidden, _, batch = self._run_shared(split, reference, candidate)
            return suffix_answer_logprob(self.llm.get_output_embeddings(), hidden, batch)
        batch = self._tokenise(questions, answers, padding_side="right", answer_end=answer_end)
        return self._answer_scores(batch, _pair(reference, candidate), share_prefix)

    @torch.no_grad()
    def single_video_loglik(
        self, videos: torch.Tensor, questions: Sequence[str], answers: Sequence[str]
    ) -> torch.Tensor:
        """Sum of answer-token log-probabilities with one video per prompt, as in
        single-video training data. videos: (B, T, P, D) -> (B,)."""
        batch = self._tokenise(questions, answers, padding_side="right", context=SINGLE_VIDEO_TEXT)
        return self._answer_scores(batch, videos.unsqueeze(1), share_starts=True)[0]

    @torch.no_grad()
    def p_yes(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        *,
        yes: str = "YES",
        no: str = "NO",
        share_prefix: bool = True,
    ) -> torch.Tensor:
        """P("YES") against "NO" for yes/no questions, batched -> (B,). ``share_prefix``:
        as in :meth:`loglik`."""

        def forward(answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            copies = len(answers) // len(questions)  # YES rows, then NO rows if scored apart
            ref = reference.repeat(copies, 1, 1, 1)  # (k*B, T, P, D)
            cand = candidate.repeat(copies, 1, 1, 1)
            questions_k = list(questions) * copies
            return self._pair_answer_scores(ref, cand, questions_k, answers, False, share_prefix)

        return p_yes_from_forward(forward, len(questions), self.tokenizer, yes, no)

    # ----- generation -----------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        max_new_tokens: int = 48,
        *,
        share_prefix: bool = True,
    ) -> list[str]:
        """Greedy answers, one per (reference, candidate, question) row. ``share_prefix``:
        as in :meth:`loglik`."""
        if self.llamacpp is not None:
            return self._generate_llamacpp(reference, candidate, questions, max_new_tokens)
        split = share_prefix and self._shared_split(reference, candidate, questions, None)
        if split:
            hidden, cache, suffixes = self._run_shared(split, reference, candidate)
            embed = self.llm.get_input_embeddings()
            eos = self.tokenizer.eos_token_id
            tokens = greedy_decode(self.llm, embed, hidden, cache, suffixes, max_new_tokens, eos)
            return self._decode_answers(tokens)
        batch = self._tokenise(questions, None, padding_side="left")
        embeds = self._inputs_embeds(batch, _pair(reference, candidate))
        mask = batch.attention_mask.to(self.device)
        return greedy_generate(self.llm, self.tokenizer, embeds, mask, max_new_tokens)

    def _generate_llamacpp(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        max_new_tokens: int,
    ) -> list[str]:
        """Greedy answers through llama.cpp: rows about one pair share its prefix; rows
        about different pairs each decode their own."""
        assert self.llamacpp is not None
        split = self._shared_split(reference, candidate, questions, None)
        groups = (
            [(list(range(len(questions))), split)]
            if split
            else [
                ([row], self._split(self._samples([question], None)))
                for row, question in enumerate(questions)
            ]
        )
        eos = self.tokenizer.eos_token_id
        answers: list[list[int]] = [[] for _ in questions]
        for rows, group_split in groups:
            first = rows[0]
            videos = _pair(reference[first : first + 1], candidate[first : first + 1])
            question = None
            if self.question_gated:  # one row per group (no shared prefix)
                question = self.question_summaries([questions[first]])  # (1, H)
            video_tokens = self.project_videos(videos, question=question).flatten(0, 2)  # (2N, H)
            tokens = self.llamacpp.answer(
                group_split.prefix, video_tokens, group_split.suffixes, max_new_tokens, eos
            )
            for row, row_tokens in zip(rows, tokens, strict=True):
                answers[row] = row_tokens
        return self._decode_answers(answers)

    def ask(
        self,
        reference: ClipRef,
        candidate: ClipRef,
        questions: Sequence[str],
        max_new_tokens: int = 48,
    ) -> list[str]:
        """Answer several questions about one pair, encoding each video once."""
        features = self.clip_features([reference, candidate])  # (2, T, P, D)
        count = len(questions)
        ref = features[0:1].expand(count, *features.shape[1:])
        cand = features[1:2].expand(count, *features.shape[1:])
        return self.generate(ref, cand, questions, max_new_tokens=max_new_tokens)

    # ----- checkpoints ------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> None:
        """Write the projector weights and the config; frozen parts are referenced by name."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "llm_hidden_size": self.projector_module.output_dim,
            "encoder_dim": self.projector_module.input_proj.in_features,
        }
        state = self.projector_module.state_dict()
        state = {k: v.detach().contiguous() for k, v in state.items()}
        save_file(state, folder / f".{PROJECTOR_FILE}.tmp")
        (folder / f".{CONFIG_FILE}.tmp").write_text(json.dumps(meta, indent=2))
        (folder / f".{PROJECTOR_FILE}.tmp").replace(folder / PROJECTOR_FILE)
        (folder / f".{CONFIG_FILE}.tmp").replace(folder / CONFIG_FILE)


def _check_answers(questions: Sequence[str], answers: Sequence[str] | None) -> None:
    """One answer per question, none empty (an empty answer would carry no loss)."""
    if answers is not None and len(answers) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    for index, answer in enumerate(answers or []):
        if not answer.strip():
            raise ValueError(f"sample {index}: the answer is empty, so it would carry no loss")


def _pair(reference: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Stack a batch of pairs in prompt order: 2 x (B, T, P, D) -> (B, 2, T, P, D)."""
    if candidate.shape != reference.shape:
        raise ValueError(
            f"reference features {tuple(reference.shape)} and candidate features "
            f"{tuple(candidate.shape)} differ in shape"
        )
    return torch.stack([reference, candidate], dim=1)
