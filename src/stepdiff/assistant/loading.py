"""Which model folder a set of options means, and the calibration stored beside it."""

from __future__ import annotations

from pathlib import Path

from stepdiff.assistant.calibration import CALIBRATION_FILE, SeverityCalibration


def model_folder(
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Path | None:
    """The checkpoint folder ``load_model_from`` would load these options from (the shipped
    model when nothing is named), or None when it builds an untrained model from a config."""
    from stepdiff.model_files import packaged_model_dir

    if checkpoint is not None:
        return Path(checkpoint)
    if config is None and not overrides:
        return packaged_model_dir()
    return None


def model_name(config: str | Path | None, folder: Path | None) -> str:
    """A readable name for calibration files: the model folder's name, else the config."""
    if folder is not None:
        return folder.resolve().name
    return Path(str(config)).stem if config is not None else "cpu-default"


def find_calibration(
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    overrides: list[str] | None = None,
    calibration_path: str | Path | None = None,
) -> SeverityCalibration | None:
    """The calibration named by ``calibration_path``, else the one stored beside the
    model folder (``severity_calibration.json``), else None."""
    if calibration_path is not None:
        return SeverityCalibration.load(calibration_path)
    folder = model_folder(config, checkpoint, overrides)
    if folder is not None and (folder / CALIBRATION_FILE).is_file():
        return SeverityCalibration.load(folder / CALIBRATION_FILE)
    return None
