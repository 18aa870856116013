"""Put projected video embeddings where a prompt's video placeholders are."""

from __future__ import annotations

import torch

from stepdiff.errors import SpliceError
from stepdiff.llm.prompt import VIDEO_TOKEN_ID


def splice_video_embeddings(
    input_ids: torch.Tensor, text_embeds: torch.Tensor, video_embeds: torch.Tensor
) -> torch.Tensor:
    """Replace the embeddings at VIDEO_TOKEN_ID positions by video embeddings, in order.

    input_ids (B, L) with V*N placeholders per row; text_embeds (B, L, H);
    video_embeds (B, V, N, H): V videos of N tokens each, in prompt order -> (B, L, H).
    Raises SpliceError when a row's placeholder count is not V*N.

    The positions are found where ``input_ids`` lie (the CPU, as batches are made) and
    only then moved to the embeddings, so this works on any device, the meta device
    included (whose tensors have shapes but no values to count).
    """
    batch, videos, tokens, width = video_embeds.shape
    is_video = input_ids == VIDEO_TOKEN_ID  # (B, L)
    expected = videos * tokens
    for row, count in enumerate(is_video.sum(dim=1).tolist()):
        if count != expected:
            raise SpliceError(
                f"sample {row}: prompt has {count} video placeholder tokens but {videos} videos "
                f"x {tokens} tokens = {expected} video embeddings were given"
            )
    if input_ids.shape[0] != batch:
        raise SpliceError(f"{input_ids.shape[0]} prompts but {batch} video pairs")
    # Row-major positions, which match the (B, V, N) order of the flat video embeddings.
    rows, cols = (p.to(text_embeds.device) for p in is_video.nonzero(as_tuple=True))
    flat = video_embeds.reshape(batch * expected, width).to(text_embeds.dtype)
    return text_embeds.index_put((rows, cols), flat)
