"""VLEmbed: compare pooled video embeddings with text embeddings in a joint space.

As in the paper's baseline, a pair is represented by the average of its two videos'
embeddings: DiffMCQ scores an option by cos(pair, caption), DiffCap retrieves the
closest caption from a pool, and DiffRank scores a target by cos(reference, target).

Two joint spaces: any Hugging Face CLIP or SigLIP model (frames embedded by the image
tower, averaged over time), and, offline, a small alignment head trained contrastively
from the frozen frame encoder's pooled features into the MiniLM sentence space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.encoders.hf import read_preprocessor_config
from stepdiff.errors import ModelLoadError, first_line
from stepdiff.text_embed import TextEmbedder
from stepdiff.video.clip import ClipRef
from stepdiff.video.decode import read_clip_frames
from stepdiff.video.transforms import MAX_RESIZE_INPUT_PIXELS, frames_to_tensor


class JointSpace(Protocol):
    def embed_clips(self, clips: Sequence[ClipRef]) -> torch.Tensor: ...  # (B, E) unit norm
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor: ...  # (B, E) unit norm


class HFJointSpace:
    """A CLIP or SigLIP model (hub id or folder): mean of per-frame image embeddings."""

    def __init__(self, spec: str, num_frames: int = 8) -> None:
        from transformers import AutoModel, AutoTokenizer

        try:
            self.model = AutoModel.from_pretrained(spec, dtype=torch.float32).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(spec)
        except Exception as error:
            raise ModelLoadError(
                f"VLEmbed model {spec!r}: cannot load ({first_line(error)})"
            ) from None
        if not hasattr(self.model, "get_image_features"):
            raise ModelLoadError(f"VLEmbed model {spec!r} is not an image-text dual encoder")
        vision = self.model.config.vision_config
        processor = read_preprocessor_config(spec)
        self.image_size = int(vision.image_size)
        self.mean = tuple(processor.get("image_mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(processor.get("image_std", (0.26862954, 0.26130258, 0.27577711)))
        # SigLIP was trained on texts padded to a fixed length.
        self.padding = "max_length" if "siglip" in self.model.config.model_type else True
        self.num_frames = num_frames

    @staticmethod
    def _pooled(output) -> torch.Tensor:
        # transformers 5 returns a model output whose pooler_output is the projection.
        return output.pooler_output if hasattr(output, "pooler_output") else output

    @torch.no_grad()
    def embed_clips(self, clips: Sequence[ClipRef]) -> torch.Tensor:
        rows = []
        for clip in clips:
            frames = read_clip_frames(
                clip, self.num_frames, fit_pixels=MAX_RESIZE_INPUT_PIXELS
            ).frames
            pixels = frames_to_tensor(frames, self.image_size, self.mean, self.std)  # (F,3,S,S)
            per_frame = self._pooled(self.model.get_image_features(pixel_values=pixels))
            rows.append(per_frame.mean(dim=0))  # (E,)
        return nn.functional.normalize(torch.stack(rows), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            list(texts), padding=self.padding, truncation=True, return_tensors="pt"
        )
        return nn.functional.normalize(self._pooled(self.model.get_text_features(**tokens)), dim=-1)


class AlignmentHead(nn.Module):
    """Pooled frozen-encoder features (B, D) -> unit vectors in a text space (B, E)."""

    def __init__(self, input_dim: int, output_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(input_dim),
            nn.Linear(input_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, output_dim),
        )
        self.dims = (input_dim, output_dim, hidden)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(pooled), dim=-1)

    def save(self, folder: Path, encoder: str, text_embedder: str, num_frames: int) -> None:
        """Weights plus what produced the inputs (encoder, frames, text space)."""
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), folder / "alignment_head.safetensors")
        meta = {
            "dims": self.dims,
            "encoder": encoder,
            "num_frames": num_frames,
            "text_embedder": text_embedder,
        }
        (folder / "alignment_head.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> tuple[AlignmentHead, dict]:
        try:
            meta = json.loads((folder / "alignment_head.json").read_text())
            head = cls(*meta["dims"])
            head.load_state_dict(load_file(folder / "alignment_head.safetensors"))
        except Exception as error:
            raise ModelLoadError(f"{folder}: not a VLEmbed alignment head ({error})") from None
        return head.eval(), meta


def pool_tokens(features: torch.Tensor) -> torch.Tensor:
    """Encoder tokens (B, T, P, D) -> one vector per clip (B, D)."""
    return features.mean(dim=(1, 2))


def train_alignment_head(
    pooled: torch.Tensor,
    text_embeddings: torch.Tensor,
    *,
    epochs: int = 300,
    lr: float = 1e-3,
    temperature: float = 0.05,
    seed: int = 0,
) -> AlignmentHead:
    """Symmetric InfoNCE between clips (N, D) and their descriptions' embeddings (N, E).

    Clips sharing an identical description are positives of each other, so duplicates
    are not pushed apart.
    """
    torch.manual_seed(seed)
    head = AlignmentHead(pooled.shape[1], text_embeddings.shape[1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    same_text = (text_embeddings @ text_embeddings.T) > 0.999  # (N, N)
    targets = same_text.float() / same_text.sum(dim=1, keepdim=True)
    for _ in range(epochs):
        logits = head(pooled) @ text_embeddings.T / temperature  # (N, N)
        loss = -(targets * logits.log_softmax(dim=1)).sum(1).mean()
        loss = loss - (targets.T * logits.T.log_softmax(dim=1)).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


class AlignedSpace:
    """The offline joint space: frozen frame encoder + alignment head + MiniLM."""

    def __init__(
        self, featurizer: ClipFeaturizer, head: AlignmentHead, text_embedder: TextEmbedder
    ) -> None:
        self.featurizer = featurizer
        self.head = head
        self.text_embedder = text_embedder

    @torch.no_grad()
    def embed_clips(self, clips: Sequence[ClipRef]) -> torch.Tensor:
        return self.head(pool_tokens(self.featurizer(clips)))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_embedder(texts)


class VLEmbedScorer:
    """The PairScorer of the VLEmbed baseline over any joint space."""

    name = "vlembed"

    def __init__(self, space: JointSpace, caption_pool: Sequence[str] = ()) -> None:
        self.space = space
        self.caption_pool = list(dict.fromkeys(caption_pool))
        self._pool_embeddings: torch.Tensor | None = None
        # Benchmarks reuse clips heavily (a DiffRank reference appears with 4 targets, MCQ
        # options share clips): embed each clip once per scorer, not once per occurrence.
        self._clip_embeddings: dict[ClipRef, torch.Tensor] = {}

    def _embed(self, clips: Sequence[ClipRef]) -> torch.Tensor:
        """Unit-norm clip embeddings (B, E), computing only clips not seen before."""
        missing = [c for c in dict.fromkeys(clips) if c not in self._clip_embeddings]
        if missing:
            self._clip_embeddings.update(zip(missing, self.space.embed_clips(missing), strict=True))
        return torch.stack([self._clip_embeddings[c] for c in clips])

    def _pairs(self, refs: Sequence[ClipRef], cands: Sequence[ClipRef]):
        embedded = self._embed([*refs, *cands])  # (2B, E)
        ref, cand = embedded[: len(refs)], embedded[len(refs) :]
        return ref, cand, nn.functional.normalize(ref + cand, dim=-1)

    def generate(self, refs, cands, questions) -> list[str]:
        if not self.caption_pool:
            raise ValueError("VLEmbed answers DiffCap by retrieval and needs a caption pool")
        if self._pool_embeddings is None:
            self._pool_embeddings = self.space.embed_texts(self.caption_pool)  # (K, E)
        _, _, pair = self._pairs(refs, cands)
        best = (pair @ self._pool_embeddings.T).argmax(dim=1)  # (B,)
        return [self.caption_pool[i] for i in best.tolist()]

    def loglik(self, refs, cands, questions, answers) -> list[float]:
        _, _, pair = self._pairs(refs, cands)
        return (pair * self.space.embed_texts(answers)).sum(-1).tolist()

    def p_yes(self, refs, cands, questions) -> list[float]:
        ref, cand, _ = self._pairs(refs, cands)
        return ((1 + (ref * cand).sum(-1)) / 2).tolist()


def load_aligned_space(folder: Path, *, cache: bool = True) -> AlignedSpace:
    """The offline joint space whose alignment head was saved in ``folder``."""
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.encoders.registry import build_frame_encoder

    head, meta = AlignmentHead.load(folder)
    featurizer = ClipFeaturizer(
        build_frame_encoder(meta["encoder"]),
        num_frames=int(meta["num_frames"]),
        cache=FeatureCache() if cache else None,
    )
    return AlignedSpace(featurizer, head, TextEmbedder(meta["text_embedder"]))
