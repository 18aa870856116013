"""Where StepDiff keeps caches (features, de-quantised LLMs, demo clips)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$STEPDIFF_CACHE`` if set, else ``~/.cache/stepdiff``."""
    env = os.environ.get("STEPDIFF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stepdiff"
