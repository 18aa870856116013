"""Greedy answers after a prompt prefix that holds the video embeddings: one interface,
two backends.

Every StepDiff prompt starts with the system text that holds both videos, then the
question. The prefix (most of the prompt: 2 x 32 video tokens plus the system text) is
decoded once per pair; each question's suffix runs after it and is answered greedily.
:class:`Decoder` is what the model asks for; :class:`TorchDecoder` answers with the
frozen transformers LLM, ``LlamaCppAnswerer`` (stepdiff.llm.llamacpp_answers) with its
GGUF file through llama.cpp, several times faster on CPUs.

The torch backend keeps the last prefix's key/value cache: a chat about one pair (the
web app, repeated ``ask``) decodes its prefix once. Suffixes of different lengths are
left-padded *between* prefix and suffix: the attention mask hides the pads and explicit
position ids keep each real token at its position in the full prompt, so results equal
the unshared computation.

Shapes: K rows, Lp prefix length, S suffix length (padded), n video tokens, H LLM width.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from stepdiff.llm.prompt import VIDEO_TOKEN_ID


class Decoder(Protocol):
    def answer(
        self,
        prefix: Sequence[int],
        video_tokens: torch.Tensor,
        suffixes: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_id: int,
    ) -> list[list[int]]:
        """Greedy answer tokens for each suffix after ``prefix``, whose video
        placeholders take the rows of ``video_tokens`` (n, H) in order, the same for
        every suffix, or (K, n, H): each suffix's own. EOS ends an answer and is not
        kept."""
        ...


def split_shared_prefix(
    prompts: Sequence[Sequence[int]], probe: Sequence[int] | None = None
) -> tuple[list[int], list[list[int]]] | None:
    """The longest common prefix of the prompts and each prompt's rest, or None when it
    would not hold every video placeholder. Every suffix keeps at least one token (the
    prefix's last position then predicts no answer token).

    ``probe``, a prompt with another question, only shortens the prefix: without it a
    single prompt's prefix would run into its own question, and the next question about
    the same videos could not reuse it.
    """
    rows = [*prompts, probe] if probe is not None else list(prompts)
    length = min(len(p) for p in rows) - 1
    for position in range(length):
        if any(p[position] != rows[0][position] for p in rows[1:]):
            length = position
            break
    total_videos = list(rows[0]).count(VIDEO_TOKEN_ID)
    if length <= 0 or list(rows[0][:length]).count(VIDEO_TOKEN_ID) != total_videos:
        return None
    return list(rows[0][:length]), [list(p[length:]) for p in prompts]


def prefix_key(ids: Sequence[int], video_tokens: np.ndarray) -> str:
    """Identity of a prompt prefix: its token ids and the exact video embeddings."""
    digest = hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(video_tokens, dtype=np.float32).tobytes())
    return digest.hexdigest()


def with_cache(base: nn.Module, cache: object | None, **inputs: Any) -> tuple[torch.Tensor, Any]:
    """One forward of the LLM body with a key/value cache -> (hidden (K, S, H), cache).

    Recent transformers name the cache argument and output ``cache``, older ones
    ``past_key_values``; both are supported.
    """
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    if cache is not None:
        inputs[name] = cache
    out = base(use_cache=True, **inputs)
    return out.last_hidden_state, getattr(out, name)


class TorchDecoder:
    """The frozen transformers LLM as a :class:`Decoder`."""

    def __init__(self, llm: nn.Module, pad_id: int) -> None:
        self.llm = llm
        self.pad_id = pad_id
        self._memo: tuple[str, object] | None = None  # (prefix key, its cache)

    @torch.no_grad()
    def answer(
        self,
        prefix: Sequence[int],
        video_tokens: torch.Tensor,
        suffixes: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_id: int,
    ) -> list[list[int]]:
        embed, base = self.llm.get_input_embeddings(), self.llm.base_model
        device = video_tokens.device
        videos = video_tokens if video_tokens.ndim == 3 else video_tokens[None]  # (G, n, H)
        ids = torch.tensor([list(prefix)] * len(videos), device=device)  # (G, Lp)
        embeds = embed(ids.clamp(min=0))  # (G, Lp, H): placeholders get a stand-in first
        is_video = ids == VIDEO_TOKEN_ID
        if int(is_video[0].sum()) != videos.shape[1]:
            raise ValueError(
                f"{int(is_video[0].sum())} video placeholders, {videos.shape[1]} tokens"
            )
        embeds[is_video] = videos.flatten(0, 1).to(embeds.dtype)
        key = prefix_key(prefix, videos.detach().float().cpu().numpy())
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, with_cache(base, None, inputs_embeds=embeds)[1])
        # The suffixes, left-padded after the prefix, on a copy of its cache.
        rows, width, start = len(suffixes), max(map(len, suffixes)), len(prefix)
        suffix_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        real = torch.zeros(rows, width, dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            suffix_ids[row, width - len(suffix) :] = torch.tensor(list(suffix))
            real[row, width - len(suffix) :] = 1
        positions = (start + real.cumsum(dim=1) - 1).clamp(min=start).to(device)  # (K, S)
        mask = torch.cat([torch.ones(rows, start, dtype=torch.long), real], dim=1).to(device)
        cache = copy.deepcopy(self._memo[1])
        if len(videos) == 1:
            cache.batch_repeat_interleave(rows)  # (1, ...) -> (K, ...)
        inputs = embed(suffix_ids.to(device))
        head = self.llm.get_output_embeddings()
        tokens: list[list[int]] = [[] for _ in range(rows)]
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            hidden, cache = with_cache(
                base, cache, inputs_embeds=inputs, attention_mask=mask, position_ids=positions
            )
            next_ids = head(hidden[:, -1]).argmax(dim=-1)  # (K,)
            done |= next_ids == eos_id
            for row in (~done).nonzero()[:, 0].tolist():
                tokens[row].append(int(next_ids[row]))
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            inputs, positions = embed(next_ids[:, None]), positions[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        return tokens
