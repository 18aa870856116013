"""Answer log-likelihoods and greedy generation shared by StepDiff and text-only LLMs."""

from __future__ import annotations

from collections.abc import Callable

import torch

from stepdiff.model.batching import IGNORE_INDEX


def answer_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over answer positions: logits (B, L, V), labels (B, L) -> (B,).

    Position t predicts token t+1, so logits and labels are shifted against each other.
    """
    logits = logits[:, :-1]  # (B, L-1, V)
    labels = labels[:, 1:].to(logits.device)  # (B, L-1)
    scored = labels != IGNORE_INDEX
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, L-1)
    return (picked * scored).sum(dim=1)


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


# Given answers for k copies of a batch of B prompts (k*B rows, copy-major), the logits
# (k*B, L, V) and answer-only labels (k*B, L) of prompt + answer.
AnswerForward = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


def p_yes_from_forward(
    forward: AnswerForward, count: int, tokenizer, yes: str = "YES", no: str = "NO"
) -> torch.Tensor:
    """P(yes) against no for ``count`` prompts -> (B,).

    When ``no`` is a single token (as "NO" is for most tokenizers), one forward over
    prompt + ``yes`` suffices: log p(no) is read at the position that predicts the
    answer's first token. Otherwise both answers are scored, in one batch of 2B rows.
    """
    no_ids = tokenizer(no, add_special_tokens=False)["input_ids"]
    if len(no_ids) != 1:
        logits, labels = forward([yes] * count + [no] * count)
        return yes_probability(answer_logprob(logits, labels))
    logits, labels = forward([yes] * count)
    log_yes = answer_logprob(logits, labels)  # (B,)
    first = (labels != IGNORE_INDEX).int().argmax(dim=1).to(logits.device)  # (B,)
    before_answer = logits[torch.arange(count, device=logits.device), first - 1]  # (B, V)
    log_no = torch.log_softmax(before_answer.float(), dim=-1)[:, no_ids[0]]
    return yes_probability(torch.cat([log_yes, log_no]))
