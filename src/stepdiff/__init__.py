"""StepDiff: answer questions about the differences between a candidate video of a
procedural step and a reference how-to video of the same step."""

from stepdiff.errors import StepDiffError

__version__ = "0.1.0"
__all__ = ["StepDiffError", "__version__"]
