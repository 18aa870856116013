"""Answer log-likelihoods and greedy generation shared by StepDiff and text-only LLMs."""

from __future__ import annotations

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
