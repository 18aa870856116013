"""FLOP counts against hand-computed numbers and against torch's own FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from stepdiff.projector import PerceiverProjector, ProjectorConfig
from stepdiff.train.flops import (
    llm_matmul_params,
    measure_gemm_peak,
    mfu,
    projector_forward_flops,
    projector_training_flops,
    training_flops_per_sample,
)

SMALL = ProjectorConfig(num_latents=8, depth=2, width=64, heads=2, head_dim=16, ff_mult=2)


def test_training_flops_hand_computed() -> None:
    # LLM: 4 * 1e9 * 100 = 4e11; projector bound: 6 * 1e6 * (50 + 10) * 2 videos = 7.2e8.
    assert training_flops_per_sample(10**9, 10**6, 100, 50, num_latents=10) == 4e11 + 7.2e8
    # Attention: 12 * 2 layers * 100^2 * 64 = 1.536e7 on top.
    with_attention = training_flops_per_sample(
        10**9, 10**6, 100, 50, num_latents=10, llm_layers=2, llm_width=64
    )
    assert with_attention == 4e11 + 7.2e8 + 1.536e7
    # An exact per-video projector count replaces the bound, once per video.
    exact = training_flops_per_sample(
        10**9, 10**6, 100, 50, num_videos=3, num_latents=10, projector_per_video=1e6
    )
    assert exact == 4e11 + 3e6


def test_projector_forward_flops_hand_computed() -> None:
    # M=36 media tokens, K=8 latents, W=64, inner=32, D=32 in, H=48 out.
    input_proj = 2 * 36 * 32 * 64
    layer = (
        2 * 8 * 64 * 32  # to_q
        + 2 * 44 * 64 * 64  # to_kv
        + 4 * 8 * 44 * 32  # scores and weighted sum
        + 2 * 8 * 32 * 64  # to_out
        + 4 * 8 * 64 * 128  # feed-forward
    )
    head = 2 * 8 * 64 * 48
    assert projector_forward_flops(SMALL, 32, 48, 36) == input_proj + 2 * layer + head == 1662976


def test_projector_flops_match_torch_flop_counter() -> None:
    torch.manual_seed(0)
    projector = PerceiverProjector(32, 48, SMALL)
    tokens = torch.randn(1, 4, 9, 32)  # (B, T, P, D): 36 media tokens
    # The math backend runs attention as matmuls the counter sees (the fused CPU kernel
    # is not counted).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        out = projector(tokens)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as backward:
        out.sum().backward()
    assert forward.get_total_flops() == projector_forward_flops(SMALL, 32, 48, 36)
    total = forward.get_total_flops() + backward.get_total_flops()
    assert total == projector_training_flops(SMALL, 32, 48, 36)


@pytest.mark.parametrize("tied", [False, True])
def test_frozen_llm_flops_match_torch_flop_counter(tied: bool) -> None:
    """Frozen weights: forward 2NL + backward to the inputs 2NL, attention 12 n L^2 d."""
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
        attn_implementation="eager",  # attention as plain matmuls the counter sees
    )
    model = LlamaForCausalLM(config).requires_grad_(False)
    length = 32
    embeds = torch.randn(1, length, 64, requires_grad=True)  # stands in for video tokens
    with FlopCounterMode(display=False) as counter:
        model(inputs_embeds=embeds).logits.sum().backward()
    expected = training_flops_per_sample(
        llm_matmul_params(model), 0, length, 0, num_latents=0, llm_layers=2, llm_width=64
    )
    assert counter.get_total_flops() == expected


def test_mfu_and_peak() -> None:
    assert mfu(2.0, 5e12, 1e14) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        mfu(1.0, 1.0, 0.0)
    peak = measure_gemm_peak(n=64, repeats=2)
    assert 1e6 < peak < 1e15  # some FLOP/s, not a unit error
