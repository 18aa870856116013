"""Clips -> frozen encoder tokens, decoding and encoding only what the cache lacks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stepdiff.encoders.base import FrameEncoder
from stepdiff.encoders.cache import FeatureCache, feature_key
from stepdiff.errors import VideoError
from stepdiff.video.clip import ClipRef


class ClipFeaturizer:
    """Turns clips into encoder tokens ``(B, T, P, D)``, through an optional cache.

    Each distinct clip (by cache key: same file identity, segment and sampling) is
    decoded and encoded at most once per call, and at most once ever with a cache.
    Misses are encoded ``batch_size`` clips per encoder call.
    """

    def __init__(
        self,
        encoder: FrameEncoder,
        num_frames: int = 8,
        cache: FeatureCache | None = None,
        batch_size: int = 8,
    ) -> None:
        if num_frames < 1 or batch_size < 1:
            raise ValueError(
                f"num_frames and batch_size must be >= 1, got {num_frames}, {batch_size}"
            )
        self.encoder = encoder
        self.num_frames = num_frames
        self.cache = cache
        self.batch_size = batch_size
        # Fail early (e.g. VideoMAE with the wrong frame count) rather than after decoding.
        self.tokens_shape = encoder.tokens_shape(num_frames)

    def key(self, clip: ClipRef) -> str:
        """Cache key of ``clip`` under this encoder and sampling."""
        return feature_key(self.encoder.cache_id, clip, self.num_frames, self.encoder.image_size)

    def frames(self, clip: ClipRef) -> torch.Tensor:
        """Decoded, resized, normalised frames of ``clip``: ``(F, 3, S, S)`` float32."""
        from stepdiff.video.decode import read_clip_frames
        from stepdiff.video.transforms import MAX_RESIZE_INPUT_PIXELS, frames_to_tensor

        sampled = read_clip_frames(
            clip, num_frames=self.num_frames, fit_pixels=MAX_RESIZE_INPUT_PIXELS
        )
        enc = self.encoder
        pixels = frames_to_tensor(sampled.frames, enc.image_size, enc.mean, enc.std)
        if pixels.shape[0] != self.num_frames:
            raise VideoError(f"{clip}: got {pixels.shape[0]} frames, expected {self.num_frames}")
        return pixels  # (F, 3, S, S)

    def __call__(self, clips: Sequence[ClipRef]) -> torch.Tensor:
        """Tokens ``(B, T, P, D)`` float32 for ``clips``, in input order."""
        if not clips:
            time_steps, tokens = self.tokens_shape
            return torch.empty(0, time_steps, tokens, self.encoder.dim)
        keys = [self.key(clip) for clip in clips]
        found: dict[str, torch.Tensor] = {}
        todo: dict[str, ClipRef] = {}  # insertion-ordered: misses encode in input order
        # An entry of another shape cannot belong to this key: the cache treats it as
        # corrupt rather than hand it on to fail (or silently broadcast) downstream.
        shape = (*self.tokens_shape, self.encoder.dim)  # (T, P, D)
        for key, clip in zip(keys, clips, strict=True):
            if key in found or key in todo:
                continue  # duplicate clip in this batch
            cached = self.cache.get(key, shape=shape) if self.cache is not None else None
            if cached is not None:
                found[key] = cached
            else:
                todo[key] = clip
        pending = list(todo.items())
        for begin in range(0, len(pending), self.batch_size):
            chunk = pending[begin : begin + self.batch_size]
            # Decode one chunk at a time: a batch of 224px clips is ~5 MB per clip.
            batch = torch.stack([self.frames(clip) for _, clip in chunk])  # (b, F, 3, S, S)
            # Frames are decoded on the CPU; the encoder may sit on a GPU, in 16 bits.
            # Features come back as fp32 on the CPU: the form the cache stores and
            # callers move to their own device.
            weight = next(self.encoder.parameters(), None)
            if weight is not None:
                batch = batch.to(device=weight.device, dtype=weight.dtype)
            tokens = self.encoder(batch).float().cpu()  # (b, T, P, D)
            for (key, _), clip_tokens in zip(chunk, tokens, strict=True):
                # clone: a row view would keep (and a cache file would serialise) the batch.
                found[key] = clip_tokens.clone()
                if self.cache is not None:
                    self.cache.put(key, found[key])
        return torch.stack([found[key] for key in keys]).float()  # (B, T, P, D)
