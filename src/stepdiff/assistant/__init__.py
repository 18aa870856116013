"""The coaching assistant: where and how much a user's clip differs from a reference.

``Assistant(model).report(reference, candidate)`` gives, per difference category, a
generated caption, P(YES) to "same <category>?", a 1-5 severity (calibrated on a dev
split's human DiffRank scores when a calibration is available) and the moments where the
frozen frame features differ most. ``rank`` orders candidates against one reference;
``ask`` answers free questions.
"""

from stepdiff.assistant.assistant import Assistant
from stepdiff.assistant.calibration import (
    CALIBRATION_FILE,
    SeverityCalibration,
    similarity_to_severity,
    uncalibrated_severity,
)
from stepdiff.assistant.categories import check_categories
from stepdiff.assistant.errors import AssistantError, CalibrationError, UnknownCategoryError
from stepdiff.assistant.results import (
    CategoryDifference,
    DifferenceReport,
    Moment,
    RankedCandidate,
    RankResult,
)

__all__ = [
    "CALIBRATION_FILE",
    "Assistant",
    "AssistantError",
    "CalibrationError",
    "CategoryDifference",
    "DifferenceReport",
    "Moment",
    "RankResult",
    "RankedCandidate",
    "SeverityCalibration",
    "UnknownCategoryError",
    "check_categories",
    "similarity_to_severity",
    "uncalibrated_severity",
]
