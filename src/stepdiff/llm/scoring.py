"""Answer log-likelihoods and greedy generation shared by StepDiff and text-only LLMs."""

from __future__ import annotations

from collections.abc import Callable

import torch

IGNORE_INDEX = -100  # label value that cross-entropy skips


def answer_logprobs(
    head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer scores from the LLM's last hidden states (B, L, H) and answer-only labels
    (B, L), IGNORE_INDEX elsewhere; every row needs at least one answer token.

    Returns the sum of log p(label) per row (B,) and the fp32 log-probabilities (B, V) at
    the position that predicts each row's first answer token. Position t predicts token
    t+1. The vocabulary projection and the softmax run only at the positions that predict
    an answer token: over every position, the projection is about a fifth of a small LLM's
    compute and the softmax reads and writes B x L x V floats, for a few answer tokens.
    """
    labels = labels.to(hidden.device)
    answer = labels[:, 1:] != IGNORE_INDEX  # (B, L-1)
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = answer
    # fp32: log-likelihoods summed over an answer lose digits in 16 bits.
    log_probs = torch.log_softmax(head(hidden[predicts]).float(), dim=-1)  # (n, V)
    targets = labels[:, 1:][answer]  # (n,) in the same row-major order
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n,)
    rows = predicts.nonzero()[:, 0]  # (n,) row of each picked token
    total = torch.zeros(hidden.shape[0], device=hidden.device).index_add_(0, rows, picked)
    first = torch.ones_like(rows, dtype=torch.bool)
    first[1:] = rows[1:] != rows[:-1]
    return total, log_probs[first]


@torch.no_grad()
def greedy_generate(
    llm, tokenizer, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int
) -> list[str]:
    """Greedy continuations of left-padded prompts given as embeddings (B, L, H)."""
    output = llm.generate(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # (B, new tokens): given only inputs_embeds, generate returns just the new tokens
    return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]


def yes_probability(yes_then_no: torch.Tensor) -> torch.Tensor:
    """P(YES) against NO from stacked log-likelihoods: (2B,) = [YES x B, NO x B] -> (B,)."""
    return torch.softmax(yes_then_no.view(2, -1), dim=0)[0]


# Given answers for k copies of a batch of B prompts (k*B rows, copy-major), the answer
# scores of prompt + answer, as answer_logprobs returns them: (k*B,) and (k*B, V).
AnswerScores = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


def p_yes_from_forward(
    forward: AnswerScores, count: int, tokenizer, yes: str = "YES", no: str = "NO"
) -> torch.Tensor:
    """P(yes) against no for ``count`` prompts -> (B,).

    When ``no`` is a single token (as "NO" is for most tokenizers), one forward over
    prompt + ``yes`` suffices: log p(no) is read at the position that predicts the
    answer's first token. Otherwise both answers are scored, in one batch of 2B rows.
    """
    no_ids = tokenizer(no, add_special_tokens=False)["input_ids"]
    if len(no_ids) != 1:
        return yes_probability(forward([yes] * count + [no] * count)[0])
    log_yes, first = forward([yes] * count)  # (B,), (B, V)
    return yes_probability(torch.cat([log_yes, first[:, no_ids[0]]]))
