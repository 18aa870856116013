"""StepDiffModel: frozen video encoder -> trainable Perceiver projector -> frozen LLM.

Both videos of a pair go through the same projector and are spliced into one prompt
(reference first, candidate second), so the LLM reads them together. Only the projector
trains; the loss covers answer tokens only. Answers come from one :class:`Decoder`
(the frozen LLM in torch, or its GGUF file through llama.cpp); scores from one path that
runs each start of the prompts that neighbouring rows share once.

Shapes: B pairs, T time steps, P tokens per step, D encoder width, N video tokens per
video, H LLM width, L sequence length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from stepdiff.config import StepDiffConfig
from stepdiff.encoders.base import FrameEncoder
from stepdiff.encoders.cache import FeatureCache
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.errors import ConfigError
from stepdiff.llm.decoding import Decoder, TorchDecoder, split_shared_prefix
from stepdiff.llm.loading import FrozenLLM
from stepdiff.llm.prompt import (
    SINGLE_VIDEO_TEXT,
    VIDEOS_TEXT,
    InterleavedSample,
    TokenisedSample,
    select_prompt_format,
    tokenise_sample,
)
from stepdiff.llm.scoring import answer_logprobs, p_yes_from_forward
from stepdiff.llm.shared_starts import best_shared_start, run_grouped, start_candidates
from stepdiff.model.batching import IGNORE_INDEX, TokenBatch, collate
from stepdiff.model.losses import answer_loss
from stepdiff.model.splice import splice_video_embeddings
from stepdiff.model_files import write_checkpoint
from stepdiff.projector import PerceiverProjector
from stepdiff.video.clip import ClipRef

if TYPE_CHECKING:
    from stepdiff.llm.llamacpp_answers import LlamaCppAnswerer

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
        self._frozen_llm = llm
        if llm.loaded:
            self.llm = llm.model
        self.tokenizer = llm.tokenizer
        self.llm_name = llm.name
        self.projector = projector
        self.projector_trained = projector_trained
        self.prompt_format = select_prompt_format(config.prompt_format, llm.name, llm.tokenizer)
        self.featurizer = ClipFeaturizer(encoder, config.num_frames, feature_cache)
        self._decoder: Decoder | None = None  # TorchDecoder at the first answer, unless replaced
        # Answers and scores through llama.cpp (use_llamacpp): the torch LLM never loads.
        self._llamacpp: LlamaCppAnswerer | None = None

    @property
    def llm(self) -> nn.Module:
        """The frozen LLM; a deferred one (see ``FrozenLLM``) loads here, on the
        projector's device, at the first use."""
        if "llm" not in self._modules:
            model = self._frozen_llm.model.to(self.device)
            self._modules["llm"] = model  # add_module would ask this property
            if "words" in self.projector_module.components:
                # Bind the LLM's own table instead of the file-mapped one read before.
                self.projector_module.components["words"].set_anchors(
                    model.get_input_embeddings().weight
                )
        return self._modules["llm"]

    @property
    def decoder(self) -> Decoder:
        """What generates answers: the torch LLM unless ``use_llamacpp`` chose llama.cpp."""
        if self._decoder is None:
            self._decoder = TorchDecoder(self.llm, self.tokenizer.pad_token_id)
        return self._decoder

    @decoder.setter
    def decoder(self, decoder: Decoder) -> None:
        self._decoder = decoder

    def use_llamacpp(
        self, n_threads: int | None = None, answerer: LlamaCppAnswerer | None = None
    ) -> None:
        """Run the frozen LLM through llama.cpp from its GGUF file, with the video tokens
        injected as embeddings: answers (several times faster on CPUs) and scores (P(YES),
        caption likelihoods; as fast as torch, in the quantised weights' memory), so the
        torch LLM never loads. Training still needs it. ``answerer``: one already loaded
        for this model's LLM."""
        from stepdiff.llm.llamacpp_answers import LlamaCppAnswerer

        if answerer is None:
            answerer = LlamaCppAnswerer.for_llm(self.config.llm, n_threads)
        answerer.check_width(self.projector_module.output_dim)
        self.decoder = answerer
        self._llamacpp = answerer

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

    def _samples(
        self,
        questions: Sequence[str],
        answers: Sequence[str] | None,
        *,
        answer_end: bool = True,
        context: str = VIDEOS_TEXT,
    ) -> list[TokenisedSample]:
        _check_answers(questions, answers)
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
        require_answers: bool = True,
    ) -> TokenBatch:
        """Pad tokenised samples on the right into one batch (answer-only labels)."""
        return collate(
            samples,
            pad_id=self.tokenizer.pad_token_id,
            max_length=self.config.max_length,
            require_answers=require_answers,
        )

    def project_videos(self, videos: torch.Tensor, paired: bool | None = None) -> torch.Tensor:
        """Video tokens for the LLM: (B, V, T, P, D) -> (B, V, N, H). ``paired``: the two
        videos of each row are a (reference, candidate) pair, which a comparing
        projector reads against each other (default: when V is 2; training says so
        explicitly, since an interleaved sequence may also hold two clips)."""
        batch_size, num_videos = videos.shape[:2]
        # The projector keeps fp32 weights whatever the frozen parts run in; the splice
        # casts its output to the LLM's dtype.
        videos = videos.to(self.projector_module.latents.dtype)
        paired = num_videos == 2 if paired is None else paired
        others = None
        if paired and self.projector_module.reads_pairs:
            others = videos.flip(1).flatten(0, 1)  # each video's partner, (B*2, T, P, D)
        tokens = self.projector(videos.flatten(0, 1), others)  # (B*V, N, H)
        return tokens.view(batch_size, num_videos, *tokens.shape[1:])

    def _inputs_embeds(
        self, batch: TokenBatch, videos: torch.Tensor, paired: bool | None = None
    ) -> torch.Tensor:
        """Token embeddings with the videos (B, V, T, P, D) spliced in -> (B, L, H)."""
        if videos.shape[0] != batch.input_ids.shape[0]:
            raise ValueError(
                f"{batch.input_ids.shape[0]} prompts but video features {tuple(videos.shape)}"
            )
        # Placeholders are not real ids: embed a stand-in, then overwrite those rows.
        ids = batch.input_ids.clamp(min=0).to(self.device)
        text = self.llm.get_input_embeddings()(ids)  # (B, L, H)
        return splice_video_embeddings(batch.input_ids, text, self.project_videos(videos, paired))

    def _attention_mask(self, batch: TokenBatch) -> torch.Tensor | None:
        """The batch's mask, or None without padding: the same computation, and one
        that needs no mask values (which meta tensors, in the dry run, do not have)."""
        return None if bool(batch.attention_mask.all()) else batch.attention_mask.to(self.device)

    def _hidden(
        self, batch: TokenBatch, videos: torch.Tensor, paired: bool | None = None
    ) -> torch.Tensor:
        """The LLM's last hidden states -> (B, L, H)."""
        embeds = self._inputs_embeds(batch, videos, paired)
        return self.llm.base_model(
            inputs_embeds=embeds, attention_mask=self._attention_mask(batch)
        )[0]

    # ----- components' own scores (stepdiff.variants) ------------------------------------
    def component_scores(
        self, name: str, videos: torch.Tensor, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projector component ``name``'s score of each (reference, candidate) row, with
        each row's text summary (B, H) for one that reads it; no LLM runs over the videos.
        videos (B, 2, T, P, D) -> (B,); a component that reads queries scores each row's
        first video, (B, 1, T, P, D) -> its scores."""
        dtype = self.projector_module.latents.dtype
        videos = videos.to(dtype)
        reference = videos[:, 0]  # (B, T, P, D)
        candidate = videos[:, 1] if videos.shape[1] > 1 else None
        text = None if text is None else text.to(dtype)
        return self.projector_module.score(name, reference, candidate, text)

    @property
    def matches_captions(self) -> bool:
        """Whether the projector has a caption match head (``projector.caption_match``)."""
        return "caption_match" in self.projector_module.components

    @torch.no_grad()
    def match_captions(
        self, reference: torch.Tensor, candidate: torch.Tensor, captions: Sequence[str]
    ) -> torch.Tensor:
        """How well each caption describes its pair, by the caption match head:
        reference and candidate (B, T, P, D) -> (B,)."""
        videos = _pair(reference, candidate).to(self.device)  # (B, 2, T, P, D)
        if not self.matches_captions:
            raise ConfigError("this projector has no caption_match component")
        head = self.projector_module.components["caption_match"]
        return self.component_scores("caption_match", videos, head.read_texts(self, captions))

    # ----- training -----------------------------------------------------------------
    def forward(
        self,
        batch: TokenBatch,
        videos: torch.Tensor,
        paired: bool | None = None,
        rank_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss (:func:`stepdiff.model.losses.answer_loss`); videos
        (B, V, T, P, D) in prompt order (``paired``: as in :meth:`project_videos`); with
        ``rank_scores`` (G, K), the B = G x K rows are G ranking items of K options each.
        Wrappers such as FSDP gather their parameters around ``forward``, so training
        calls the model itself.

        The vocabulary projection runs only where a label is: answers are a small part of
        each sequence, and the (L, V) logits would otherwise cost about a fifth of a small
        LLM's compute and most of its activation memory.
        """
        hidden = self._hidden(batch, videos, paired)  # (R, L, H)
        labels = batch.labels[:, 1:]  # position t predicts token t+1
        keep = labels != IGNORE_INDEX  # (R, L-1), where the batch was made
        rows, cols = (p.to(self.device) for p in keep.nonzero(as_tuple=True))
        logits = self.llm.get_output_embeddings()(hidden[rows, cols])  # (K, V)
        targets = labels[keep].to(self.device)  # (K,)
        return answer_loss(batch, keep.to(self.device), logits, targets, rank_scores)

    def answer_loss(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> torch.Tensor:
        """Mean cross-entropy over answer tokens. reference/candidate: (B, T, P, D)."""
        batch = self.collate(self._samples(questions, answers))
        return self(batch, _pair(reference, candidate))

    # ----- scoring --------------------------------------------------------------------
    @torch.no_grad()
    def _answer_scores(
        self, batch: TokenBatch, videos: torch.Tensor, share_prefix: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of answer-token log-probabilities per row (B,) and the log-probabilities at
        the position that predicts each row's first answer token (B, V).

        With ``share_prefix`` (same results, less compute), the start that neighbouring
        rows share runs once per group: up to the question for rows about one pair, up to
        the candidate video for DiffRank's candidates of one reference, else the system
        text before the first video. A start must hold no answer token, nor predict one.
        """
        if self._llamacpp is not None:
            return self._llamacpp_answer_scores(batch, videos)
        embeds = self._inputs_embeds(batch, videos)  # (B, L, H)
        mask = batch.attention_mask.to(self.device)
        answered = int((batch.labels != IGNORE_INDEX).int().argmax(dim=1).min())
        starts = start_candidates(batch.input_ids, videos.shape[1], self.num_video_tokens)
        groups = share_prefix and best_shared_start(
            embeds, mask, [s for s in starts if s < answered]
        )
        if groups:
            hidden = embeds.new_zeros(embeds.shape)  # zeros over the shared start
            hidden[:, groups.length :] = run_grouped(self.llm, embeds, mask, groups)
        else:
            hidden = self.llm.base_model(inputs_embeds=embeds, attention_mask=mask)[0]
        return answer_logprobs(self.llm.get_output_embeddings(), hidden, batch.labels)

    def _llamacpp_answer_scores(
        self, batch: TokenBatch, videos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``_answer_scores`` through llama.cpp: no torch LLM, the GGUF's own weights."""
        assert self._llamacpp is not None
        tokens = self.project_videos(videos.to(self.device)).flatten(1, 2)  # (B, V*N, H)
        real = batch.attention_mask.bool()
        rows = [
            (ids[keep].tolist(), labels[keep].tolist())
            for ids, labels, keep in zip(batch.input_ids, batch.labels, real, strict=True)
        ]
        return self._llamacpp.answer_scores(rows, tokens)

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
        ``share_prefix``: see :meth:`_answer_scores`."""
        batch = self.collate(self._samples(questions, answers, answer_end=answer_end))
        return self._answer_scores(batch, _pair(reference, candidate), share_prefix)[0]

    @torch.no_grad()
    def single_video_loglik(
        self, videos: torch.Tensor, questions: Sequence[str], answers: Sequence[str]
    ) -> torch.Tensor:
        """Sum of answer-token log-probabilities with one video per prompt, as in
        single-video training data. videos: (B, T, P, D) -> (B,)."""
        batch = self.collate(self._samples(questions, answers, context=SINGLE_VIDEO_TEXT))
        return self._answer_scores(batch, videos.unsqueeze(1))[0]

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
        see :meth:`_answer_scores`."""

        def forward(answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            copies = len(answers) // len(questions)  # YES rows, then NO rows if scored apart
            batch = self.collate(self._samples(list(questions) * copies, answers, answer_end=False))
            videos = _pair(reference, candidate).repeat(copies, 1, 1, 1, 1)  # (k*B, 2, T, P, D)
            return self._answer_scores(batch, videos, share_prefix)

        return p_yes_from_forward(forward, len(questions), self.tokenizer, yes, no)

    # ----- generation -----------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        questions: Sequence[str],
        max_new_tokens: int = 48,
    ) -> list[str]:
        """Greedy answers, one per (reference, candidate, question) row. Every prompt
        starts with the same text around the videos: that prefix is decoded once, with
        one pair's videos when every row shows that pair, else with each row's own."""
        same = all(
            torch.equal(video, video[:1].expand_as(video)) for video in (reference, candidate)
        )
        probe = self._samples([PROBE_QUESTION], None)[0].prompt_ids
        prompts = [sample.prompt_ids for sample in self._samples(questions, None)]
        split = split_shared_prefix(prompts, probe)
        if split is None:
            raise ValueError("a prompt's videos are not all before its question")
        videos = _pair(reference[:1], candidate[:1]) if same else _pair(reference, candidate)
        video_tokens = self.project_videos(videos.to(self.device)).flatten(1, 2)  # (G, 2N, H)
        prefix, suffixes = split
        tokens = self.decoder.answer(
            prefix,
            video_tokens[0] if same else video_tokens,
            suffixes,
            max_new_tokens,
            self.tokenizer.eos_token_id,
        )
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [text.strip() for text in texts]

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
        projector = self.projector_module
        state = {k: v.detach().contiguous() for k, v in projector.state_dict().items()}
        write_checkpoint(folder, self.config, state, projector.input_proj.in_features)


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
