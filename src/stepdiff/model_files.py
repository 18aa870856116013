"""Saved StepDiff model folders: file names, writing and reading them, exporting them
for shipping, and which model a command's options mean. Imports no LLM code (reading a
model's config should not cost the seconds that importing transformers takes)."""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from stepdiff.config import StepDiffConfig, load_config
from stepdiff.errors import ConfigError, ModelLoadError

CONFIG_FILE = "stepdiff_config.json"
PROJECTOR_FILE = "projector.safetensors"
CHECKPOINT_FORMAT = 1
# The projector trained on SynthKitchen that ships inside the package (with its config,
# training report and severity calibration); the default whenever no config or checkpoint
# is named. Its frozen LLM is Qwen2.5-Coder-0.5B-Instruct (`make llm-qwen-0.5b`).
PACKAGED_MODEL = "pretrained/synthkitchen-qwen"


def packaged_model_dir() -> Path | None:
    """The shipped trained model folder, or None when this install has none."""
    folder = Path(str(importlib.resources.files("stepdiff") / PACKAGED_MODEL))
    return folder if (folder / PROJECTOR_FILE).is_file() else None


def read_checkpoint_config(folder: str | Path) -> StepDiffConfig:
    """The config of a saved StepDiff model, with a clear error when it is not one."""
    config_path = Path(folder) / CONFIG_FILE
    if not config_path.is_file():
        raise ModelLoadError(f"{config_path}: missing; not a StepDiff checkpoint folder")
    try:
        meta = json.loads(config_path.read_text())
        return StepDiffConfig.from_dict(meta["config"], str(config_path))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ModelLoadError(f"{config_path}: unreadable checkpoint config ({error})") from None


def read_projector_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The projector weights of a saved StepDiff model, with a clear error when corrupt."""
    weights_path = Path(folder) / PROJECTOR_FILE
    if not weights_path.is_file():
        raise ModelLoadError(f"{weights_path}: missing; not a StepDiff checkpoint folder")
    try:
        return load_file(weights_path)
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ModelLoadError(f"{weights_path}: corrupt projector weights ({error})") from None


def check_finite_weights(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a NaN or infinite projector weight: every answer and score would be NaN
    (a diverged run saves such weights), failing far from here or not at all."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelLoadError(
                f"{path}: projector weight {name!r} holds {bad} NaN or infinite values of "
                f"{tensor.numel()} (a diverged training run?)"
            )


def write_checkpoint(
    folder: str | Path, config: StepDiffConfig, state: dict[str, torch.Tensor], encoder_dim: int
) -> None:
    """Write projector weights and the config (frozen parts are referenced by name), each
    file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "llm_hidden_size": int(state["head.weight"].shape[0]),
        "encoder_dim": encoder_dim,
    }
    save_file(state, folder / f".{PROJECTOR_FILE}.tmp")
    (folder / f".{CONFIG_FILE}.tmp").write_text(json.dumps(meta, indent=2))
    (folder / f".{PROJECTOR_FILE}.tmp").replace(folder / PROJECTOR_FILE)
    (folder / f".{CONFIG_FILE}.tmp").replace(folder / CONFIG_FILE)


def export_model(source: str | Path, dest: str | Path, *, half: bool = True) -> Path:
    """Copy a trained model folder for shipping: projector weights (fp16 by default, which
    halves the size; they load back into fp32 parameters), config and any reports."""
    source, dest = Path(source), Path(dest)
    weights = read_projector_weights(source)
    read_checkpoint_config(source)
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != PROJECTOR_FILE and item.suffix in {".json", ".md"}:
            shutil.copy2(item, dest / item.name)
    dtype = torch.float16 if half else torch.float32
    # Only weights are halved: integer buffers (the words head's token ids, up to ~150k)
    # would not survive a cast to fp16.
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in weights.items()
    }
    save_file(state, dest / f".{PROJECTOR_FILE}.tmp")
    (dest / f".{PROJECTOR_FILE}.tmp").replace(dest / PROJECTOR_FILE)
    return dest


def resolve_model_config(
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    overrides: list[str] | None = None,
) -> tuple[StepDiffConfig, Path | None]:
    """The config a command's options mean, and the checkpoint folder if any.

    A config (file or preset) or a checkpoint folder, not both, with ``key=value``
    overrides applied. With neither and no overrides: the shipped trained model when the
    package has one, else the untrained ``cpu-default`` model."""
    if config is None and checkpoint is None and not overrides:
        checkpoint = packaged_model_dir()
    if checkpoint is None:
        return load_config(config, overrides), None
    if config is not None:
        raise ConfigError("give either a config or a checkpoint (a checkpoint has its config)")
    return checkpoint_config(checkpoint, overrides), Path(checkpoint)


def checkpoint_config(folder: str | Path, overrides: list[str] | None = None) -> StepDiffConfig:
    """A saved model's config with ``key=value`` overrides applied (e.g. the same LLM from
    a local folder instead of a hub id)."""
    config = read_checkpoint_config(folder)
    return config.with_overrides(overrides, str(folder)) if overrides else config
