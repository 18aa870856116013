"""Training checkpoints: a loadable StepDiff model folder plus the trainer's state.

A checkpoint is written into a hidden temporary folder and renamed into place in one
step, so a crash never leaves a half-written ``step-NNNNNN`` folder behind.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stepdiff.errors import ModelLoadError, first_line
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


def _numpy_array_globals() -> list[Any]:
    """What unpickling numpy's random state (a uint32 array) needs beyond tensors and
    plain values. They only rebuild plain arrays: whatever an array holds still goes
    through the same weights-only unpickler, so no other code can run."""
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    uint32 = type(np.dtype(np.uint32))  # numpy.dtypes.UInt32DType where it has a name
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, uint32]


def load_trainer_state(folder: Path) -> TrainerState:
    """The trainer state of a checkpoint folder, read without running any code in it:
    a crafted ``trainer_state.pt`` holding other objects is refused."""
    path = folder / TRAINER_STATE
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False: exactly what must not be done here.
        raise ModelLoadError(
            f"{path}: refused: not a trainer state of tensors and plain values as StepDiff "
            "saves it (loading it fully could run code that it holds)"
        ) from None
    except Exception as error:  # torch raises several types for truncated files
        raise ModelLoadError(f"{path}: corrupt trainer state ({first_line(error)})") from None
    try:
        return TrainerState(**data)
    except TypeError as error:  # not a dict, or other keys
        raise ModelLoadError(f"{path}: corrupt trainer state ({first_line(error)})") from None
