"""Errors that reach users. Each carries a one-line message naming the file, line or
field at fault; the CLI prints it and exits non-zero."""


class StepDiffError(Exception):
    """Base class for every error StepDiff reports to users."""


class VideoError(StepDiffError):
    """A video could not be opened, decoded or sampled as asked."""


class ClipSpecError(StepDiffError):
    """A clip specification (path, segment or clip id) is malformed or unresolvable."""


class ConfigError(StepDiffError):
    """A configuration key or value is invalid."""


class ModelLoadError(StepDiffError):
    """A model, checkpoint or weight file could not be loaded."""


class SpliceError(StepDiffError):
    """Video placeholders in a prompt and the video embeddings given disagree in number."""


class DataFormatError(StepDiffError):
    """A benchmark or prediction file breaks its format (message: file, line, field)."""


def first_line(error: BaseException) -> str:
    """An exception as one short line (library errors often span many), for messages."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
