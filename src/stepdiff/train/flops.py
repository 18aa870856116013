"""Training FLOPs of StepDiff, the machine's matmul peak, and model FLOPs utilisation (MFU).

StepDiff trains only the projector, so the usual "6 x parameters x tokens" rule does not
hold: the frozen LLM runs forward (2 N L) and backward to its *inputs* only (2 N L), since
no weight gradients are computed for frozen weights. Counts are model FLOPs (2 per
multiply-add), without activation recomputation, so MFU stays comparable across setups.

Shapes: L sequence length, N parameters, n layers, d LLM width, M video tokens in,
K latents (video tokens out), W projector width, I attention inner width.
"""

from __future__ import annotations

import time

import torch

from stepdiff.projector import ProjectorConfig


def measure_gemm_peak(
    n: int = 2048,
    repeats: int = 5,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> float:
    """Achieved FLOP/s of one ``(n, n) @ (n, n)`` ``torch.matmul``, best of ``repeats``.

    Uses the current ``torch.get_num_threads()`` on CPU. The best (not the mean) run is
    the machine's attainable peak: slower runs measure interference, not the hardware.
    """
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be >= 1, got n={n}, repeats={repeats}")
    device = torch.device(device)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    out = torch.empty(n, n, dtype=dtype, device=device)
    torch.matmul(a, b, out=out)  # warm-up: the first call picks kernels and touches pages
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def projector_forward_flops(
    config: ProjectorConfig, input_dim: int, output_dim: int, media_tokens: int
) -> float:
    """Matmul FLOPs of one PerceiverProjector forward pass for one video.

    ``media_tokens`` = T*P encoder tokens. Follows stepdiff.projector.perceiver: the
    input projection sees every media token, keys/values see media + latents, queries,
    output projection, feed-forward and head see the latents only.
    """
    m, k, w = media_tokens, config.num_latents, config.width
    inner = config.heads * config.head_dim
    flops = 2 * m * input_dim * w  # input_proj
    per_layer = (
        2 * k * w * inner  # to_q
        + 2 * (m + k) * w * 2 * inner  # to_kv over [media; latents]
        + 2 * 2 * k * (m + k) * inner  # scores q k^T and weighted sum of v
        + 2 * k * inner * w  # to_out
        + 2 * 2 * k * w * w * config.ff_mult  # feed-forward, two matmuls
    )
    flops += config.depth * per_layer
    flops += 2 * k * w * output_dim  # head
    return float(flops)


def projector_training_flops(
    config: ProjectorConfig, input_dim: int, output_dim: int, media_tokens: int
) -> float:
    """Forward + backward matmul FLOPs of the projector for one video.

    Backward is twice the forward (input and weight gradients), except that the input
    projection needs no input gradient: encoder features are frozen, so nothing upstream
    wants one.
    """
    forward = projector_forward_flops(config, input_dim, output_dim, media_tokens)
    input_proj = 2 * media_tokens * input_dim * config.width
    return 3.0 * forward - input_proj


def llm_matmul_params(model: torch.nn.Module) -> int:
    """Parameters of a causal LM that multiply every token: its weight matrices, less
    the input embedding table, which is a lookup (norm weights and biases are
    elementwise and left out too). Tied embeddings are also the LM head, a matmul, and
    ``parameters()`` lists a tied table once: then it stays in."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    return sum(
        p.numel() for p in model.parameters() if p.ndim >= 2 and (tied or p is not embedding)
    )


def training_flops_per_sample(
    llm_params: int,
    projector_params: int,
    seq_len: int,
    video_tokens_in: int,
    num_videos: int = 2,
    *,
    num_latents: int,
    llm_layers: int = 0,
    llm_width: int = 0,
    projector_per_video: float | None = None,
) -> float:
    """Model FLOPs of one training sample (one question about a pair of videos).

    - Frozen LLM, linear layers: forward ``2 N L`` plus backward to the inputs only,
      ``2 N L`` (the activation gradient ``dX = dY W^T``; no ``dW`` for frozen weights):
      ``4 N L``. ``llm_params`` should be the parameters that multiply every token: all
      but the input-embedding table (a lookup), the LM head included (see
      :func:`llm_matmul_params`).
    - Frozen LLM, attention scores (only when ``llm_layers`` and ``llm_width`` are given):
      PaLM's MFU convention, forward ``4 n L^2 d`` (``q k^T`` and the weighted sum of
      ``v``, full matrices, no causal halving), backward twice that (attention has no
      weights, so all of it is needed): ``12 n L^2 d``. Kaplan et al.'s ``2 n L^2 d``
      counts the ``q k^T`` product alone; we count both, as the executed kernels do.
    - Trainable projector, per video: ``projector_per_video`` when given (exact, from
      :func:`projector_training_flops`); otherwise the upper bound ``6 N_proj (M + K)``:
      forward + backward is ``3x`` the forward, and every projector weight sees at most
      the ``M`` media tokens plus the ``K`` latents (keys/values do; queries,
      feed-forward and head see only the ``K`` latents).

    Not counted: the frozen video encoder (features are cached, see DESIGN.md), norms,
    activations, softmax and the loss (all O(L d), negligible next to the matmuls).
    """
    for name, value in (("llm_params", llm_params), ("seq_len", seq_len)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    llm = 4.0 * llm_params * seq_len
    attention = 12.0 * llm_layers * seq_len**2 * llm_width
    if projector_per_video is None:
        projector_per_video = 6.0 * projector_params * (video_tokens_in + num_latents)
    projector = projector_per_video * num_videos
    return llm + attention + projector


def mfu(samples_per_s: float, flops_per_sample: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak FLOP/s (0..1).

    ``peak`` is for the same hardware the throughput was measured on, summed over all
    devices when ``samples_per_s`` is the throughput of all of them.
    """
    if peak <= 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak}")
    return samples_per_s * flops_per_sample / peak
