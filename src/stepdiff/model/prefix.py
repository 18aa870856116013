"""Several questions about one pair of videos: run the shared prompt prefix once.

Every StepDiff prompt starts with the system text that holds both videos, then the
question. When several questions are asked about the same pair (``stepdiff ask`` with
many questions, a per-category report), that prefix (most of the prompt: 2 x 32 video
tokens plus the system text) is the same for every row. It runs once; its key/value
cache is repeated for the rows, and only each row's own suffix (question, answer) runs.

Rows' suffixes differ in length, so they are left-padded *between* the prefix and the
suffix: the attention mask hides the pads and explicit position ids keep each real token
at the position it has in the full prompt, so results equal the unshared computation.

Shapes: K rows, Lp prefix length, S suffix length (padded), H LLM width, V vocabulary.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from stepdiff.llm.prompt import VIDEO_TOKEN_ID, TokenisedSample
from stepdiff.model.batching import IGNORE_INDEX
from stepdiff.model.scoring import answer_logprobs


@dataclass(frozen=True)
class PrefixSplit:
    """Token ids of K samples split at the longest prefix they share."""

    prefix: list[int]  # shared ids, every video placeholder among them
    suffixes: list[list[int]]  # per row: ids after the prefix
    labels: list[list[bool]]  # per row: which suffix ids carry loss (answer tokens)


def split_shared_prefix(
    samples: Sequence[TokenisedSample], probe: TokenisedSample | None = None
) -> PrefixSplit | None:
    """The longest common prefix of the samples' prompts, or None when sharing it would
    not be exact: it must hold every video placeholder and no answer token, and each
    row's suffix must start with a prompt token (so the prefix's last position predicts
    no labelled token).

    ``probe``, a prompt with another question, only shortens the prefix: without it a
    single sample's prefix would run into its own question, and the next question about
    the same videos could not reuse it.
    """
    rows = [sample.ids_and_labels() for sample in samples]
    prompts = [sample.prompt_ids for sample in samples]
    if probe is not None:
        prompts = [*prompts, probe.prompt_ids]
    length = min(len(p) for p in prompts)
    for position in range(length):
        if any(p[position] != prompts[0][position] for p in prompts[1:]):
            length = position
            break
    # A row whose whole prompt is the prefix would have its first answer token predicted
    # by the prefix: keep at least one prompt token in every suffix.
    length = min(length, min(len(p) for p in prompts) - 1)
    total_videos = prompts[0].count(VIDEO_TOKEN_ID)
    if length <= 0 or prompts[0][:length].count(VIDEO_TOKEN_ID) != total_videos:
        return None
    return PrefixSplit(
        prefix=prompts[0][:length],
        suffixes=[ids[length:] for ids, _ in rows],
        labels=[labels[length:] for _, labels in rows],
    )


@dataclass
class SuffixBatch:
    """Left-padded suffixes after a shared prefix of ``prefix_length`` tokens."""

    input_ids: torch.Tensor  # (K, S), pads hold pad_id
    labels: torch.Tensor  # (K, S) bool, True at answer tokens
    attention_mask: torch.Tensor  # (K, Lp + S): the prefix, then the suffix's real tokens
    position_ids: torch.Tensor  # (K, S): each token's position in its full prompt
    prefix_length: int


def pad_suffixes(split: PrefixSplit, pad_id: int, device: torch.device) -> SuffixBatch:
    rows, width = len(split.suffixes), max(len(s) for s in split.suffixes)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    labels = torch.zeros(rows, width, dtype=torch.bool)
    real = torch.zeros(rows, width, dtype=torch.long)
    for row, (suffix, label) in enumerate(zip(split.suffixes, split.labels, strict=True)):
        start = width - len(suffix)
        ids[row, start:] = torch.tensor(suffix)
        labels[row, start:] = torch.tensor(label)
        real[row, start:] = 1
    prefix_length = len(split.prefix)
    positions = prefix_length + real.cumsum(dim=1) - 1  # (K, S)
    positions = positions.clamp(min=prefix_length)  # pads: any valid position, masked
    mask = torch.cat([torch.ones(rows, prefix_length, dtype=torch.long), real], dim=1)
    return SuffixBatch(
        ids.to(device), labels.to(device), mask.to(device), positions.to(device), prefix_length
    )


def prefix_key(ids: Sequence[int], video_tokens: np.ndarray) -> str:
    """Identity of a prompt prefix: its token ids and the exact video embeddings."""
    digest = hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(video_tokens, dtype=np.float32).tobytes())
    return digest.hexdigest()


Embed = Callable[[torch.Tensor], torch.Tensor]  # token ids (K, S) -> embeddings (K, S, H)


def _with_cache(
    base: nn.Module, cache: object | None, **inputs: Any
) -> tuple[torch.Tensor, object]:
    """One forward of the LLM body with a key/value cache -> (hidden (K, S, H), cache).

    Recent transformers name the cache argument and output ``cache``, older ones
    ``past_key_values``; both are supported.
    """
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    if cache is not None:
        inputs[name] = cache
    out = base(use_cache=True, **inputs)
    return out.last_hidden_state, getattr(out, name)


@torch.no_grad()
def prefix_cache(llm: nn.Module, prefix_embeds: torch.Tensor) -> object:
    """The LLM's key/value cache after the prefix (1, Lp, H); never modified afterwards."""
    return _with_cache(llm.base_model, None, inputs_embeds=prefix_embeds)[1]


@torch.no_grad()
def run_suffixes(
    llm: nn.Module, embed: Embed, prefix: object, batch: SuffixBatch
) -> tuple[torch.Tensor, object]:
    """Run the K suffixes on a copy of the prefix's cache, repeated K times.

    Returns the suffixes' last hidden states (K, S, H) and the cache (prefix + suffixes),
    ready for decoding further tokens. The prefix cache itself is left as it was.
    """
    cache = copy.deepcopy(prefix)
    cache.batch_repeat_interleave(batch.input_ids.shape[0])  # (1, ...) -> (K, ...)
    return _with_cache(
        llm.base_model,
        cache,
        inputs_embeds=embed(batch.input_ids),
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
    )


# --- rows that share only the start of their prompt ------------------------------------
# Rows of one scoring batch often share the start of their prompt: DiffRank's four
# candidates of one reference share everything up to the candidate video, and every row
# shares the system text before the first video. That start runs once per group of rows
# and its cache is copied to each row.


def video_starts(input_ids: torch.Tensor, num_videos: int, tokens_per_video: int) -> list[int]:
    """The positions of the videos' first placeholders that are the same in every row of
    ``input_ids`` (B, L), in prompt order."""
    seen = (input_ids == VIDEO_TOKEN_ID).long().cumsum(dim=1)  # (B, L)
    starts = []
    for video in range(num_videos):
        at = (seen <= video * tokens_per_video).sum(dim=1)  # (B,) placeholders before
        if bool((at == at[0]).all()) and 0 < int(at[0]) < input_ids.shape[1]:
            starts.append(int(at[0]))
    return starts


@dataclass(frozen=True)
class PrefixGroups:
    """Neighbouring rows whose prompts start with the same ``length`` embeddings."""

    length: int
    first_rows: torch.Tensor  # (G,) the first row of each group
    group_of_row: torch.Tensor  # (B,) each row's group


def group_shared_starts(
    embeds: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> PrefixGroups | None:
    """Group neighbouring rows of ``embeds`` (B, L, H) whose first ``length`` embeddings
    are equal, all of them real tokens; None when no two rows share (nothing to gain).

    Equal embeddings are what makes the sharing exact, whatever produced them (the same
    clip, a projector that reads the question or the partner video...)."""
    if length < 1 or not bool(attention_mask[:, :length].all()):
        return None
    first_rows = [0]
    group_of_row = [0]
    for row in range(1, embeds.shape[0]):
        if not torch.equal(embeds[row, :length], embeds[first_rows[-1], :length]):
            first_rows.append(row)
        group_of_row.append(len(first_rows) - 1)
    if len(first_rows) == embeds.shape[0]:
        return None
    device = embeds.device
    return PrefixGroups(
        length, torch.tensor(first_rows, device=device), torch.tensor(group_of_row, device=device)
    )


def best_shared_start(
    embeds: torch.Tensor, attention_mask: torch.Tensor, starts: Sequence[int]
) -> PrefixGroups | None:
    """Of the candidate ``starts``, the grouping that saves the most token positions
    ((rows - groups) x length); None when none saves any."""
    best: PrefixGroups | None = None
    saved = 0
    for length in starts:
        groups = group_shared_starts(embeds, attention_mask, length)
        if groups is None:
            continue
        saving = (embeds.shape[0] - len(groups.first_rows)) * length
        if saving > saved:
            best, saved = groups, saving
    return best


@torch.no_grad()
def run_grouped(
    llm: nn.Module, embeds: torch.Tensor, attention_mask: torch.Tensor, groups: PrefixGroups
) -> torch.Tensor:
    """The LLM's last hidden states after each row's shared start -> (B, L - length, H).

    The G shared starts run as one batch; their cache is copied to each group's rows,
    which then run the rest of their prompts (right padding stays after real tokens).
    """
    length = groups.length
    _, cache = _with_cache(llm.base_model, None, inputs_embeds=embeds[groups.first_rows, :length])
    cache.batch_select_indices(groups.group_of_row)  # (G, ...) -> (B, ...)
    rows, total = attention_mask.shape
    positions = torch.arange(length, total, device=embeds.device).expand(rows, -1)  # (B, S)
    hidden, _ = _with_cache(
        llm.base_model,
        cache,
        inputs_embeds=embeds[:, length:],
        attention_mask=attention_mask,
        position_ids=positions,
    )
    return hidden


def suffix_answer_logprob(
    head: nn.Module, hidden: torch.Tensor, batch: SuffixBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p(answer token) per row -> (K,), and the fp32 log-probabilities (K, V)
    at the position that predicts each row's first answer token."""
    labels = torch.where(batch.labels, batch.input_ids, IGNORE_INDEX)  # (K, S)
    return answer_logprobs(head, hidden, labels)


@torch.no_grad()
def greedy_decode(
    llm: nn.Module,
    embed: Embed,
    hidden: torch.Tensor,
    cache: object,
    batch: SuffixBatch,
    max_new_tokens: int,
    eos_id: int,
) -> list[list[int]]:
    """Greedy tokens after each suffix, until EOS or ``max_new_tokens`` (EOS not kept)."""
    head = llm.get_output_embeddings()
    rows = hidden.shape[0]
    next_ids = head(hidden[:, -1]).argmax(dim=-1)  # (K,)
    positions = batch.position_ids[:, -1:]  # (K, 1)
    mask = batch.attention_mask
    tokens: list[list[int]] = [[] for _ in range(rows)]
    done = torch.zeros(rows, dtype=torch.bool, device=hidden.device)
    for step in range(max_new_tokens):
        done |= next_ids == eos_id
        for row in (~done).nonzero()[:, 0].tolist():
            tokens[row].append(int(next_ids[row]))
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        positions = positions + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        hidden, cache = _with_cache(
            llm.base_model,
            cache,
            inputs_embeds=embed(next_ids[:, None]),
            attention_mask=mask,
            position_ids=positions,
        )
        next_ids = head(hidden[:, -1]).argmax(dim=-1)
    return tokens
