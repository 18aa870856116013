"""Which severity calibration a command uses: the option group of the commands that give
severities (``report``, ``serve``). Cheap to import, as the CLI builds its options from
it before any model code loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stepdiff.options import option


@dataclass(frozen=True)
class CalibrationOptions:
    path: Path | None = option(
        "--calibration",
        default=None,
        help="Severity calibration JSON (default: the one beside the model, if any).",
    )


BESIDE_THE_MODEL = CalibrationOptions()  # no flag: the calibration stored beside the model
