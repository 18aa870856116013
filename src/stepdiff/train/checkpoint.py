"""Training checkpoints: a loadable StepDiff model folder plus the trainer's state.

A checkpoint is written into a hidden temporary folder and renamed into place in one
step, so a crash never leaves a half-written ``step-NNNNNN`` folder behind.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stepdiff.errors import ModelLoadError
from stepdiff.model.stepdiff import StepDiffModel

TRAINER_STATE = "trainer_state.pt"
PREFIX = "step-"


@dataclass
class TrainerState:
    step: int  # optimiser steps completed
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    fingerprint: str


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:06d}"


def save_model_atomically(model: StepDiffModel, folder: Path, extra: dict[str, Any]) -> Path:
    """Write ``model`` (+ extra files: name -> bytes, or a state to torch.save) to ``folder``
    through a temporary sibling folder renamed into place."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for name, content in extra.items():
        if isinstance(content, bytes):
            (tmp / name).write_bytes(content)
        else:
            torch.save(content, tmp / name)
    if folder.exists():
        # Replacing a folder cannot be one rename: move the old one aside first.
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old)
    else:
        os.replace(tmp, folder)
    return folder


def save_checkpoint(root: Path, model: StepDiffModel, state: TrainerState, keep: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    folder = save_model_atomically(
        model, checkpoint_dir(root, state.step), {TRAINER_STATE: state.__dict__}
    )
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old)
    return folder


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / TRAINER_STATE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def load_trainer_state(folder: Path) -> TrainerState:
    path = folder / TRAINER_STATE
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        return TrainerState(**data)
    except Exception as error:  # torch raises several types for truncated files
        raise ModelLoadError(f"{path}: corrupt trainer state ({error})") from None
