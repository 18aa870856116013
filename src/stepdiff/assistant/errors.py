"""Errors the coaching assistant reports to users (one line each, see stepdiff.errors)."""

from __future__ import annotations

from stepdiff.errors import StepDiffError


class AssistantError(StepDiffError):
    """A request to the assistant cannot be served as asked (e.g. too few candidates)."""


class UnknownCategoryError(AssistantError):
    """A difference category that is not one of the benchmark's categories."""


class CalibrationError(AssistantError):
    """A severity calibration file is unreadable, malformed or made for another model."""
