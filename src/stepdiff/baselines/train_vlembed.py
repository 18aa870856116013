"""Train VLEmbed's offline joint space on SynthKitchen's training split: the frozen frame
encoder's pooled features aligned contrastively with MiniLM embeddings of each clip's
ground-truth description."""

from __future__ import annotations

from pathlib import Path

from stepdiff.baselines.vlembed import pool_tokens, train_alignment_head
from stepdiff.encoders.cache import FeatureCache
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.encoders.registry import build_frame_encoder
from stepdiff.errors import ConfigError
from stepdiff.synthkitchen.builder import load_clips
from stepdiff.synthkitchen.render import describe_spec
from stepdiff.text_embed import DEFAULT_TEXT_EMBEDDER, TextEmbedder
from stepdiff.video.clip import resolve_clip


def train_aligned_space(
    data_dir: Path,
    out_dir: Path,
    *,
    encoder: str = "efficientnet-lite0",
    text_embedder: str = DEFAULT_TEXT_EMBEDDER,
    num_frames: int = 8,
    epochs: int = 300,
    seed: int = 0,
    cache: FeatureCache | None = None,
) -> Path:
    """Fit the alignment head on the train split of a built SynthKitchen benchmark."""
    specs = [spec for spec in load_clips(data_dir).values() if spec.split == "train"]
    if not specs:
        raise ConfigError(f"{data_dir}: the benchmark has no training clips")
    clips = [resolve_clip(spec.clip_id, Path(data_dir) / "videos") for spec in specs]
    featurizer = ClipFeaturizer(build_frame_encoder(encoder), num_frames, cache)
    pooled = pool_tokens(featurizer(clips))  # (N, D)
    texts = TextEmbedder(text_embedder)([describe_spec(spec) for spec in specs])  # (N, E)
    head = train_alignment_head(pooled, texts, epochs=epochs, seed=seed)
    head.save(Path(out_dir), encoder=encoder, text_embedder=text_embedder, num_frames=num_frames)
    return Path(out_dir)
