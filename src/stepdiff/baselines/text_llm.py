"""Text-only LLM baselines: blind (the question alone) and Socratic (text descriptions of
both clips in place of the videos), on the same frozen LLM as StepDiff."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from stepdiff.llm.loading import FrozenLLM
from stepdiff.llm.prompt import select_prompt_format, tokenise_sample
from stepdiff.llm.scoring import answer_logprobs, greedy_generate, p_yes_from_forward
from stepdiff.model.batching import collate
from stepdiff.video.clip import ClipRef

Describer = Callable[[ClipRef], str]


class TextLLMScorer:
    """Scores pairs with a text-only prompt built from ``describe`` (None = blind)."""

    def __init__(
        self,
        llm: FrozenLLM,
        describe: Describer | None = None,
        *,
        name: str | None = None,
        prompt_format: str = "auto",
        max_new_tokens: int = 32,
        max_length: int = 2048,
    ) -> None:
        self.llm = llm
        self.describe = describe
        self.name = name or ("blind-llm" if describe is None else "socratic")
        self.format = select_prompt_format(prompt_format, llm.name, llm.tokenizer)
        self.max_new_tokens = max_new_tokens
        self.max_length = max_length

    def _context(self, ref: ClipRef, cand: ClipRef) -> str:
        """The paper's video sentences with descriptions where the videos would be."""
        if self.describe is None:
            return ""
        first, second = (self.describe(clip).strip().rstrip(".") for clip in (ref, cand))
        return f"Here is the first video: {first}. Here is the second video: {second}."

    def _batch(self, refs, cands, questions, answers, *, padding_side, answer_end=True):
        samples = [
            tokenise_sample(
                self.format,
                question,
                None if answers is None else answers[i],
                num_video_tokens=0,
                answer_end=answer_end,
                context=self._context(refs[i], cands[i]),
            )
            for i, question in enumerate(questions)
        ]
        return collate(
            samples,
            self.llm.tokenizer.pad_token_id,
            padding_side=padding_side,
            max_length=self.max_length,
            require_answers=answers is not None,
        )

    @torch.no_grad()
    def generate(self, refs, cands, questions) -> list[str]:
        batch = self._batch(refs, cands, questions, None, padding_side="left")
        embeds = self.llm.model.get_input_embeddings()(batch.input_ids)  # (B, L, H)
        return greedy_generate(
            self.llm.model, self.llm.tokenizer, embeds, batch.attention_mask, self.max_new_tokens
        )

    @torch.no_grad()
    def _answer_scores(self, refs, cands, questions, answers, answer_end: bool = True):
        """Answer scores of prompt + answer, as :func:`answer_logprobs` returns them."""
        batch = self._batch(
            refs, cands, questions, answers, padding_side="right", answer_end=answer_end
        )
        model = self.llm.model
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        return answer_logprobs(model.get_output_embeddings(), hidden[0], batch.labels)

    def loglik(self, refs, cands, questions, answers) -> list[float]:
        return self._answer_scores(refs, cands, questions, answers)[0].tolist()

    def p_yes(
        self, refs: Sequence[ClipRef], cands: Sequence[ClipRef], questions: Sequence[str]
    ) -> list[float]:
        def forward(answers: list[str]):
            copies = len(answers) // len(questions)
            return self._answer_scores(
                [*refs] * copies, [*cands] * copies, [*questions] * copies, answers, False
            )

        return p_yes_from_forward(forward, len(questions), self.llm.tokenizer).tolist()
